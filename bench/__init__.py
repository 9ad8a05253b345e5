"""roibench: a benchmark harness for region-of-interest image compression.

Data flows one way: dataset -> codec -> results store -> task -> report.
"""

__version__ = "0.1.0"
