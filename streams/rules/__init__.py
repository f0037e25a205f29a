"""The rules of identity resolution as pure functions: no Kafka, no faust, no I/O.

Everything here is a function of its arguments, so it is tested exhaustively without a broker
(tests/unit/rules) and the runtime can run it on any engine.

The same modules compiled with mypyc run instead when ``make`` has built them from these very
sources (streams.native): loaded here, before any of them is imported.
"""

from streams import native

native.load(__path__)
