"""Output: rendering tables, JSON and CSV, atomic writes, and ranking exports (CSV, JSON, XLSX,
plots). Imports any layer below; nothing but ``cli`` imports it."""
