from batchjobs.slicing import MIN_CHUNKS_PER_HALF, Remaining, Split, choose_split


def test_the_slice_with_most_rows_left_is_halved():
    split = choose_split(
        [Remaining(1, 10_000), Remaining(2, 90_001), Remaining(3, 5)], chunk_size=1_000
    )
    assert split == Split(2, keep=45_000, give=45_001)


def test_no_split_when_a_half_would_be_under_a_few_chunks():
    rows = 2 * MIN_CHUNKS_PER_HALF * 1_000
    assert choose_split([Remaining(1, rows)], chunk_size=1_000) == Split(
        1, keep=rows // 2, give=rows // 2
    )
    assert choose_split([Remaining(1, rows - 2)], chunk_size=1_000) is None


def test_nothing_to_split():
    assert choose_split([], chunk_size=100) is None
    assert choose_split([Remaining(1, 0)], chunk_size=100) is None


def test_a_tie_goes_to_the_older_slice():
    split = choose_split([Remaining(7, 50_000), Remaining(3, 50_000)], chunk_size=100)
    assert split is not None and split.slice_id == 3
