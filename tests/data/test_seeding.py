import torch

from wascompress.data.seeding import seeded_generator


def draw(generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2**31 - 1, (8,), generator=generator)


def test_same_seed_and_stream_give_the_same_sequence() -> None:
    assert torch.equal(draw(seeded_generator(3, 1)), draw(seeded_generator(3, 1)))


def test_streams_and_seeds_are_independent() -> None:
    base = draw(seeded_generator(3, 1))
    assert not torch.equal(base, draw(seeded_generator(3, 2)))  # another use of the same seed
    assert not torch.equal(base, draw(seeded_generator(4, 1)))  # another seed
    assert not torch.equal(draw(seeded_generator(1, 2)), draw(seeded_generator(2, 1)))  # order matters


def test_negative_and_large_seeds_are_accepted() -> None:
    assert torch.equal(draw(seeded_generator(-1)), draw(seeded_generator(2**64 - 1)))  # masked to 64 bits
