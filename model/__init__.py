"""rtrank's model side: a SASRec sequence model, its vocabulary, training and evaluation.

No Kafka or Faust here. What the stream calls:

- `rtrank.model.checkpoint.load_checkpoint(path, device)`
  -> ``Checkpoint(model, vocab, version, meta)``
- `rtrank.model.serving.resolve_device(name)`,
  `rtrank.model.serving.encode_histories(model, rows_lists)`
- `SASRec.top_k(user_vecs, k, exclude) -> (scores, rows)`
- `rtrank.model.encode_cache.EncodeCache(max_bytes).encode(model, vocab, users)`
  (user vectors from each user's cached keys and values: one new position per event)
- `rtrank.model.item_ann.IvfIndex(model, config)`: ``top_k`` as above from an approximate
  IVF index, ``follow(model, changed_rows)`` after each update (catalogues of millions)
- `rtrank.model.vocab.Vocabulary` (external item id <-> embedding row; row 0 is padding)
- `rtrank.model.data.iter_records(path, fmt)` (report-and-skip reading for producers)
- `rtrank.model.synthetic.generate(...)` / `rtrank.model.synthetic.events(data)` (demo data)
"""
