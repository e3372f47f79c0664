"""rtrank's model side: a SASRec sequence model, its vocabulary, training and evaluation.

No Kafka or Faust here. What the stream calls:

- `model.checkpoint.load_checkpoint(path, device) -> Checkpoint(model, vocab, version, meta)`
- `model.serving.resolve_device(name)`, `model.serving.encode_histories(model, rows_lists)`
- `SASRec.top_k(user_vecs, k, exclude) -> (scores, rows)`
- `model.vocab.Vocabulary` (external item id <-> embedding row; row 0 is padding)
- `model.data.iter_records(path, fmt)` (report-and-skip reading for producers)
- `model.synthetic.generate(...)` / `model.synthetic.events(data)` (demo data)
"""
