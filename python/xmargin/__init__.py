"""xmargin: unified portfolio margin (libxmargin) from Python.

    import xmargin
    ds = xmargin.run("book.h5", "scenarios.h5", device="auto", save_pnl=True)
    book = xmargin.Book.from_frames(factors=..., instruments=..., accounts=..., positions=...,
                                    valuation_date="2024-06-28")

docs/python.md describes the package; FORMAT.md the files and the Dataset's variables.
"""

__version__ = "0.1.0"

from ._core import ConfigError, Context, DeviceError, Error, FormatError, devices  # noqa: E402
from ._book import Book  # noqa: E402
from ._scenarios import Scenarios  # noqa: E402
from ._results import Prepared, prepare, read_results, run, validate  # noqa: E402
from ._lib import path as library_path  # noqa: E402

__all__ = ["run", "prepare", "Prepared", "read_results", "validate", "devices", "Book", "Scenarios", "Context", "Error", "FormatError",
           "ConfigError", "DeviceError", "library_path"]
