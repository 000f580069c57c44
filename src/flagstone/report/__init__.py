"""The HTML report: one self-contained file (plotly.js inlined, no network) summarising the alerts,
with an evidence timeline for each of the most important ones; and the backtest page."""

from flagstone.report._backtest import write_backtest_report
from flagstone.report._page import TOP_ALERTS, write_report

__all__ = ["TOP_ALERTS", "write_backtest_report", "write_report"]
