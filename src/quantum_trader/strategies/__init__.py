"""Built-in strategies behind one Strategy protocol."""
