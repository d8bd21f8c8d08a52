"""The results of a finished analysis: the tables of its output folder as DataFrames."""
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

#: table attribute -> file of the output folder (a table the analysis did not write is an empty DataFrame)
TABLES = {"alignment": "alignment.csv", "best_layers": "best_layers.csv",
          "best_instructions": "best_instructions.csv", "group_tests": "group_tests.csv",
          "partitions": "variance_partition.csv", "hierarchy": "hierarchy.csv", "maps": "maps.tsv"}


@dataclass
class AnalysisResults:
    """The tables of a finished output folder as DataFrames (``TABLES``), and where the folder is."""
    folder: Path
    alignment: pd.DataFrame = field(repr=False)
    best_layers: pd.DataFrame = field(repr=False)
    best_instructions: pd.DataFrame = field(repr=False)
    group_tests: pd.DataFrame = field(repr=False)
    partitions: pd.DataFrame = field(repr=False)
    hierarchy: pd.DataFrame = field(repr=False)
    maps: pd.DataFrame = field(repr=False)

    @property
    def scores_file(self):
        """Path of the folder's scores.h5 (open it with ``encoding.outputs.scores_file.ScoresFile``)."""
        return self.folder / "scores.h5"


def read_results(folder):
    """The tables of an output folder of ``python -m encoding.run`` (or :func:`analyze`).

    Parameters
    ----------
    folder : str or Path

    Returns
    -------
    AnalysisResults
    """
    folder = Path(folder)
    tables = {}
    for name, file in TABLES.items():
        path = folder / file
        tables[name] = pd.read_csv(path, sep="\t" if file.endswith(".tsv") else ",") if path.is_file() \
            else pd.DataFrame()
    return AnalysisResults(folder, **tables)
