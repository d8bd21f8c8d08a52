"""What one analysis writes: scores.h5, alignment.csv, figures and the report."""
