"""SQL grouped by concern, each statement named and commented with why it is written that way."""
