"""The rules of identity resolution as pure functions: no Kafka, no faust, no I/O.

Everything here is a function of its arguments, so it is tested exhaustively without a broker
(tests/unit/rules) and the runtime can run it on any engine.
"""

from streams import native

native.load(__path__)
