"""What the notebooks' cells show: the first cell's setup, plots, the clip explorer, claims."""
