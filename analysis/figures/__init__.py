"""Report figures, one module per family; every function returns a Matplotlib Figure
on an Agg canvas, values in SI with the unit prefix in each axis label."""
