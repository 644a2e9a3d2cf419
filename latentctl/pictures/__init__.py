"""Pictures in and out: reading image folders and labels, grids and figures, the synthetic sets."""
