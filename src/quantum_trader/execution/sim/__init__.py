"""A simulated Binance-style USDT-M perpetuals exchange."""
