"""Where and how the job's results are stored: Parquet latents, error rows, commit markers."""
