"""Leave-one-out split."""

from __future__ import annotations

from rtrank.model.data import leave_one_out


def test_last_item_is_test_second_to_last_is_validation():
    split = leave_one_out({"u": [1, 2, 3, 4]})
    assert (split.train["u"], split.valid["u"], split.test["u"]) == ([1, 2], 3, 4)


def test_users_with_fewer_than_three_items_only_train():
    split = leave_one_out({"short": [1, 2], "one": [5], "ok": [1, 2, 3]})
    assert split.train == {"short": [1, 2], "one": [5], "ok": [1]}
    assert list(split.valid) == list(split.test) == ["ok"]


def test_test_input_includes_the_validation_item():
    split = leave_one_out({"u": [1, 2, 3, 4]})
    assert split.eval_inputs("valid") == (["u"], [[1, 2]], [3])
    assert split.eval_inputs("test") == (["u"], [[1, 2, 3]], [4])


def test_before_test_adds_the_validation_item_to_the_training_part():
    split = leave_one_out({"u": [1, 2, 3, 4], "short": [5, 6]})
    assert split.before_test() == {"u": [1, 2, 3], "short": [5, 6]}
