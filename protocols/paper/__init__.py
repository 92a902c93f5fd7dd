"""`rrambench paper`: the seed paper's figure set from one command (plan, runs, page)."""
