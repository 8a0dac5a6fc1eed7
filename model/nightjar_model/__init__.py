"""Nightjar's classifier: dataset, CNN+LSTM model, grouped cross-validation, ONNX export
and int8 quantisation. Features are never computed here: they are read from the files that
the Rust sensor writes (`nightjar replay --features`), so training and serving see the same
numbers."""
