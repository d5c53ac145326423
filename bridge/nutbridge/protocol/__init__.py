"""Sans-IO NUT network protocol: tokenizer, wire formatting, error vocabulary, and
``messages``: every answer's writer (server) and reader (client) side by side."""

from . import messages
from .errors import CLIENT_ERROR_TEXT, Err
from .tokenizer import MAX_ARGS, MAX_WORDLEN, Line, ParseError, Tokenizer, split_line
from .wire import MAX_ANSWER, MAX_VALUE, arg, clip, encode, parse_answer, quote, request

__all__ = [
    "CLIENT_ERROR_TEXT",
    "MAX_ANSWER",
    "MAX_ARGS",
    "MAX_VALUE",
    "MAX_WORDLEN",
    "Err",
    "Line",
    "ParseError",
    "Tokenizer",
    "arg",
    "clip",
    "encode",
    "messages",
    "parse_answer",
    "quote",
    "request",
    "split_line",
]
