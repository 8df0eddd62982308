"""The loss-history CSV that training writes beside its output: format, flushing, resuming."""

from __future__ import annotations

import numpy as np

from labor_cli.history import COLUMNS, LOSS_COLUMNS, LossHistoryCSV, loss_history_path, read_loss_history_csv


def losses(start: int, count: int) -> dict[str, np.ndarray]:
    """Distinct float32 values per loss and iteration."""
    steps = np.arange(start, start + count, dtype=np.float32)
    return {name: (steps + k / 7) / 3 for k, name in enumerate(LOSS_COLUMNS)}


def test_columns_are_the_training_losses():
    from labor_cli.training.steps import HISTORY_NAMES

    assert LOSS_COLUMNS == HISTORY_NAMES
    assert COLUMNS == ("iteration", *HISTORY_NAMES, "lr")


def test_rows_per_iteration_flushed_and_exact(tmp_path):
    path = loss_history_path(tmp_path / "runs" / "warmup.h5")
    assert path == tmp_path / "runs" / "warmup.losses.csv"
    writer = LossHistoryCSV(path)
    writer.append(losses(1, 3), lr=2.5e-4)
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert len(read_loss_history_csv(path)["iteration"]) == 3  # readable while the run goes on
    writer.append(losses(4, 2), lr=[1e-4, 5e-5])
    writer.close()
    table = read_loss_history_csv(path)
    assert table["iteration"].tolist() == [1, 2, 3, 4, 5]
    expected = {name: np.concatenate([losses(1, 3)[name], losses(4, 2)[name]]) for name in LOSS_COLUMNS}
    for name in LOSS_COLUMNS:
        assert np.array_equal(table[name].astype(np.float32), expected[name])  # float32 round trip
    assert table["lr"].tolist() == [2.5e-4, 2.5e-4, 2.5e-4, 1e-4, 5e-5]


def test_resume_rewinds_to_the_resumed_iteration(tmp_path):
    path = tmp_path / "adapt.losses.csv"
    writer = LossHistoryCSV(path)
    writer.append(losses(1, 10), lr=1.0)  # iterations 1..10; the resume file was saved at 6
    writer.close()
    writer = LossHistoryCSV(path, start_iteration=6)
    writer.append(losses(100, 2), lr=2.0)
    writer.close()
    table = read_loss_history_csv(path)
    assert table["iteration"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert np.array_equal(table["seg_src"][:6].astype(np.float32), losses(1, 6)["seg_src"])
    assert np.array_equal(table["seg_src"][6:].astype(np.float32), losses(100, 2)["seg_src"])
    assert table["lr"].tolist() == [1.0] * 6 + [2.0] * 2


def test_a_missing_or_foreign_file_is_rebuilt_from_the_checkpoint_history(tmp_path):
    history = losses(1, 4)
    for start in ("missing", "foreign"):
        path = tmp_path / f"{start}.losses.csv"
        if start == "foreign":
            path.write_text("step,loss\n1,0.5\n")
        writer = LossHistoryCSV(path, start_iteration=4, history=history)
        writer.append(losses(5, 1), lr=0.5)
        writer.close()
        table = read_loss_history_csv(path)
        assert table["iteration"].tolist() == [1, 2, 3, 4, 5]
        for name in LOSS_COLUMNS:
            assert np.array_equal(table[name][:4].astype(np.float32), history[name])
        assert np.isnan(table["lr"][:4]).all() and table["lr"][4] == 0.5
