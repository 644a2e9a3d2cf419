import numpy as np
import pytest

from latentctl.errors import UsageError
from latentctl.seeds import format_seeds, latent_from_seed, latents_from_seeds, parse_seeds, resolve_seeds


def test_ranges_and_lists_expand_in_order():
    assert parse_seeds("0-3,42,7") == [0, 1, 2, 3, 42, 7]


def test_open_range_takes_count():
    assert parse_seeds("500-", 3) == [500, 501, 502]
    assert parse_seeds("1,500-", 3) == [1, 500, 501]


def test_count_cuts_and_refuses_too_few():
    assert parse_seeds("0-8", 4) == [0, 1, 2, 3]
    with pytest.raises(UsageError, match="more seeds"):
        parse_seeds("1,2", 5)


@pytest.mark.parametrize("bad", ["", "a", "3-1", "1,,2", "-4", "1-", "5-x"])
def test_bad_specs_are_usage_errors_naming_the_spec(bad):
    with pytest.raises(UsageError, match="--seeds|-n"):
        parse_seeds(bad)


def test_n_alone_means_first_n_seeds():
    assert resolve_seeds(4, None) == [0, 1, 2, 3]
    with pytest.raises(UsageError):
        resolve_seeds(None, None)


def test_a_seed_addresses_the_same_latent_whatever_else_is_asked():
    alone = latent_from_seed(37, 100)
    batch = latents_from_seeds([5, 37, 9], 100)
    assert batch.dtype == np.float32 and batch.shape == (3, 100)
    np.testing.assert_array_equal(batch[1], alone)
    # StyleGAN's convention: RandomState(seed).randn
    np.testing.assert_allclose(alone, np.random.RandomState(37).randn(100).astype(np.float32))


def test_format_round_trips():
    seeds = [0, 1, 2, 3, 42, 43, 50]
    assert parse_seeds(format_seeds(seeds)) == seeds


def test_ranges_are_sized_before_they_are_expanded():
    with pytest.raises(
        UsageError, match=r"names 4,294,967,296 seeds; at most 100,000 seeds per command; split the range"
    ):
        parse_seeds("0-4294967295")
    assert parse_seeds("0-4294967295", 3) == [0, 1, 2]  # -n takes the first seeds only
    assert len(parse_seeds("0-99999")) == 100_000
    with pytest.raises(UsageError, match="at most 100,000"):
        parse_seeds("0-99999,5")


@pytest.mark.parametrize("n", [2_000_000_000, 100_001])
def test_n_is_bounded(n):
    with pytest.raises(UsageError, match="at most 100,000 samples per command"):
        resolve_seeds(n, None)
    with pytest.raises(UsageError, match="at most 100,000"):
        resolve_seeds(n, "0-")


@pytest.mark.parametrize("bad", ["١٢", "1_000", "4294967296", "0-4294967296", "5-3"])
def test_only_ascii_seeds_within_range(bad):
    with pytest.raises(UsageError, match="--seeds"):
        parse_seeds(bad)


def test_n_must_be_positive_even_with_seeds():
    with pytest.raises(UsageError, match="-n must be at least 1"):
        resolve_seeds(0, "0-8")
