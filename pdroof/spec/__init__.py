"""The spec layer: what users and the catalogue write down. Schema machinery, the spec kinds
(accelerator, KV path, KV tier, model, runtime profile), YAML loading, SI units, the catalogue,
display views of records, and the error types. Imports nothing else of pdroof."""
