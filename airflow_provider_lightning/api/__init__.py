"""Lightning REST API layer: transport, errors and resource descriptions (knows HTTP, not Airflow)."""
