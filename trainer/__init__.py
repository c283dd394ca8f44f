"""Offline training: load history, train the LSTM autoencoder, calibrate, evaluate, export a bundle."""
