"""Reports from a run's results store: points table, BD values, tables, plots, leaderboard.

``points`` turns the store into one row per (codec, quality, task, model); ``bd`` computes
Bjøntegaard deltas between codecs' curves; ``tables`` writes text, CSV, Markdown and LaTeX;
``plots`` draws rate–quality figures (screen and paper styles); ``html`` writes the static
HTML report, whose pictures ``gallery`` makes; ``leaderboard`` writes the committed ranking;
``check`` is the CI regression gate. The ``bench report`` and ``bench check`` commands drive
them.
"""
