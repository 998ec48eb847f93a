"""003's scenarios: in-distribution samples, poisoned labels, out-of-distribution insertions."""

from __future__ import annotations

import pytest
import torch

from unlearnkit import collect, evaluate, load_dataset, make_scenario, split_dataset
from unlearnkit.errors import DataError, ParameterError


def test_id_scenario_forgets_random_samples_and_gives_a_reference(digits_split):
    splits = make_scenario("id", count=50).prepare(digits_split, seed=0)
    assert len(splits.forget) == 50 and splits.kind == "samples"
    again = make_scenario("id", count=50).prepare(digits_split, seed=0)
    assert torch.equal(splits.forget_positions, again.forget_positions)  # seeded
    assert not torch.equal(
        splits.forget_positions, make_scenario("id", count=50).prepare(digits_split, seed=1).forget_positions
    )
    assert torch.equal(splits.extras["reference"].indices, digits_split.holdout.indices)
    paper = make_scenario("id", count=50, reference="test").prepare(digits_split, seed=0)
    assert torch.equal(paper.extras["reference"].indices, digits_split.test.indices)
    with pytest.raises(ParameterError, match="'reference' parameter of scenario 'id' must be 'holdout' or 'test'"):
        make_scenario("id", reference="train").prepare(digits_split, seed=0)
    with pytest.raises(ParameterError, match="'count' parameter of scenario 'id' must be an int in"):
        make_scenario("id", count=0).prepare(digits_split, seed=0)


def test_poison_scenario_flips_a_share_of_one_class(digits_split, trained_mlp):
    splits = make_scenario("poison", source=5, target=3, share=0.1).prepare(digits_split, seed=0)
    n5 = int((digits_split.train.labels == 5).sum())
    assert len(splits.forget) == round(0.1 * n5)
    assert (splits.forget.labels == 3).all()  # the forget set carries the labels it was trained with
    true = digits_split.train.labels[splits.forget_positions]
    assert (true == 5).all()  # ... which were 5 before poisoning
    flipped = (splits.train.labels != digits_split.train.labels).nonzero().flatten()
    assert torch.equal(flipped, splits.forget_positions)
    assert (digits_split.train.y == load_dataset("digits").train_y).all()  # the dataset itself is untouched
    m = evaluate(collect(trained_mlp, splits), ["poisoned_class_test_recall"])
    test5 = digits_split.test.labels == 5
    expected = float((trained_mlp(digits_split.test.tensors()[0][test5]).argmax(1) == 5).float().mean())
    assert m["poisoned_class_test_recall"] == pytest.approx(expected)
    with pytest.raises(ParameterError, match="'share' parameter of scenario 'poison' must be a float in"):
        make_scenario("poison", share=0.0).prepare(digits_split, seed=0)
    with pytest.raises(ParameterError, match="'target' parameter of scenario 'poison' must differ"):
        make_scenario("poison", source=3, target=3).prepare(digits_split, seed=0)


def test_ood_scenario_inserts_and_forgets_other_images():
    try:
        mnist = load_dataset("mnist")
        load_dataset("fashion_mnist")
    except DataError as exc:
        pytest.skip(f"needs MNIST and Fashion-MNIST: {exc}")
    split = split_dataset(mnist, seed=0, train_size=500)
    splits = make_scenario("ood", count=20, reference_count=50).prepare(split, seed=0)
    assert len(splits.train) == 520 and len(splits.forget) == 20 and len(splits.retain) == 500
    assert torch.equal(splits.forget_positions, torch.arange(500, 520))
    fashion = load_dataset("fashion_mnist").train_x
    x_forget = splits.forget.tensors()[0]
    assert all((fashion == x).flatten(1).all(1).any() for x in x_forget[:5])  # the inserted images are Fashion's
    retain_x = splits.retain.tensors()[0]
    assert torch.equal(retain_x, split.train.tensors()[0])  # the target's data is unchanged
    ref = splits.extras["reference"]
    assert len(ref) == 50 and ref.labels.max() < 10
    assert not any((x_forget == x).flatten(1).all(1).any() for x in ref.tensors()[0][:10])  # never-trained images
    with pytest.raises(ParameterError, match="must have the target's input shape"):
        make_scenario("ood").prepare(split_dataset(load_dataset("digits"), seed=0), seed=0)
