"""Training glue: config helpers, checkpoint I/O, callbacks and the train() entry."""
