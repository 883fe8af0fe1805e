"""The live venue: Binance USDT-M perpetual futures through ccxt (``venue.BinanceUsdmVenue``)."""
