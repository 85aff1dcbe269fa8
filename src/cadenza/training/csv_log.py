"""logger=csv: Lightning's CSVLogger, with one run's fit and test metrics in one file.

Under trainer=ddp_sim (ddp_spawn, or ddp_fork) fit and test each run in processes started for
them. The test phase's processes open the run's metrics file afresh, and Lightning's writer
deletes a metrics file it finds: the fit's rows were lost, or (before the version was pinned)
the test metrics went to a `version_1` of their own. Here a writer that finds the file goes on
with it: its columns are read back, and a new column rewrites the header and keeps every row.
"""

from __future__ import annotations

import csv

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class _ContinuingWriter(ExperimentWriter):
    def __init__(self, log_dir: str, continues: bool) -> None:
        self.continues = continues  # before the parent's __init__, which checks the folder
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        # In place of a warning and deleting the file: go on with it (its header's columns).
        # Only for a version this run chose (pin_version): one given by hand (logger.csv.version)
        # may be another run's, whose rows must not mix with these.
        if not self.continues:
            return super()._check_log_dir_exists()
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))


class RunCSVLogger(CSVLogger):
    """CSVLogger whose version is chosen once, in the launching process (`pin_version`), and
    whose metrics file every later phase of the run appends to."""

    _chose_version = False  # pin_version picked the version (not one given by hand)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(self.log_dir, continues=self._chose_version)
        return self._experiment

    def pin_version(self) -> None:
        """Take the next free version_N now: processes started for fit and for test inherit it
        (each would otherwise take the next one free when it first logs). A version given by
        hand is left as it is, and Lightning's writer treats its folder as it always did."""
        if self._version is None:
            self.version  # noqa: B018 - the property picks and keeps it
            self._chose_version = True
