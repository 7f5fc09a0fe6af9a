"""The x86 SHA extensions (SHA-NI) as numba intrinsics on a 4 x uint32 vector type.

Every operation also takes a tuple of vectors, one per independent hash stream, and then emits
one instruction per stream back to back: a kernel written once for one stream interleaves its
streams instruction by instruction, which hides the latency of `sha256rnds2`. A plain vector
given next to tuples is used by every stream (a round constant, say).

The state layout is the one the instructions define (Intel SHA Extensions, 2013): `abef` holds
the working variables F, E, B, A in lanes 0..3 and `cdgh` holds H, G, D, C; message vectors hold
four consecutive schedule words W[t..t+3] in lanes 0..3.

Only import this module, and only call its operations, on a CPU with the `sha` feature: LLVM
cannot lower these intrinsics for any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numba as nb
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

# LLVM picks instructions from the features of the function it compiles. numba targets the host
# CPU unless NUMBA_CPU_NAME says otherwise (a portable cache, say); these features let a function
# that uses the SHA intrinsics compile on such a generic target too.
_TARGET_FEATURES = '"target-features"="+sha,+sse4.1,+ssse3"'

_I32 = ir.IntType(32)
_V4 = ir.VectorType(_I32, 4)


def _intrinsic(definition: Callable[..., Any]) -> Any:
    """numba's `intrinsic`, typed for callers: compiled code calls it with values, not types."""
    return intrinsic(definition)


class U32x4Type(types.Type):
    """Four uint32 lanes in one 128-bit register, LLVM's `<4 x i32>`."""

    def __init__(self) -> None:
        super().__init__(name="u32x4")


u32x4 = U32x4Type()


@register_model(U32x4Type)
class _U32x4Model(models.PrimitiveModel):
    def __init__(self, dmm: Any, fe_type: U32x4Type) -> None:
        super().__init__(dmm, fe_type, _V4)


def _streams(*args: types.Type) -> int | None:
    """How many streams the arguments carry (None: all plain vectors); None for a type error."""
    counts = {a.count for a in args if isinstance(a, types.UniTuple) and a.dtype == u32x4}
    if any(a != u32x4 and not (isinstance(a, types.UniTuple) and a.dtype == u32x4) for a in args):
        raise TypeError(f"expected u32x4 or a tuple of u32x4, got {args}")
    if len(counts) > 1:
        raise TypeError(f"operands carry different numbers of streams: {sorted(counts)}")
    return counts.pop() if counts else None


def _result_type(streams: int | None, element: types.Type = u32x4) -> types.Type:
    return element if streams is None else types.UniTuple(element, streams)


def _split(builder: ir.IRBuilder, ty: types.Type, value: ir.Value, streams: int) -> list[ir.Value]:
    if isinstance(ty, types.UniTuple):
        return [builder.extract_value(value, i) for i in range(streams)]
    return [value] * streams


def _join(
    context: Any, builder: ir.IRBuilder, ty: types.Type, values: Sequence[ir.Value]
) -> ir.Value:
    if isinstance(ty, types.UniTuple):
        return context.make_tuple(builder, ty, list(values))
    return values[0]


def _enable_sha(builder: ir.IRBuilder) -> None:
    # llvmlite only knows LLVM's keyword attributes; a string attribute goes in verbatim.
    set.add(builder.function.attributes, _TARGET_FEATURES)


def _elementwise(
    arity: int, emit: Callable[[ir.IRBuilder, list[ir.Value]], ir.Value]
) -> Callable[..., Any]:
    """An intrinsic applying `emit` to each stream of `arity` vector operands."""

    def typer(args: tuple[types.Type, ...]) -> Any:
        streams = _streams(*args)

        def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
            _enable_sha(builder)
            n = 1 if streams is None else streams
            columns = [_split(builder, t, v, n) for t, v in zip(sig.args, values, strict=True)]
            results = [emit(builder, [col[i] for col in columns]) for i in range(n)]
            return _join(context, builder, sig.return_type, results)

        return _result_type(streams)(*args), codegen

    # numba reads an intrinsic's operands from its definition's signature: no *args.
    if arity == 1:

        def unary(typingctx: Any, x: types.Type) -> Any:
            return typer((x,))

        return intrinsic(unary)
    if arity == 2:

        def binary(typingctx: Any, x: types.Type, y: types.Type) -> Any:
            return typer((x, y))

        return intrinsic(binary)

    def ternary(typingctx: Any, x: types.Type, y: types.Type, z: types.Type) -> Any:
        return typer((x, y, z))

    return intrinsic(ternary)


def _x86(name: str) -> Callable[[ir.IRBuilder, list[ir.Value]], ir.Value]:
    def emit(builder: ir.IRBuilder, operands: list[ir.Value]) -> ir.Value:
        fnty = ir.FunctionType(_V4, [_V4] * len(operands))
        fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.x86.{name}")
        return builder.call(fn, operands)

    return emit


def _shuffle(*lanes: int) -> Callable[[ir.IRBuilder, list[ir.Value]], ir.Value]:
    """Lanes picked from two vectors concatenated (0..3 the first, 4..7 the second)."""
    mask = ir.Constant(ir.VectorType(_I32, len(lanes)), list(lanes))

    def emit(builder: ir.IRBuilder, operands: list[ir.Value]) -> ir.Value:
        second = operands[1] if len(operands) > 1 else ir.Constant(_V4, ir.Undefined)
        return builder.shuffle_vector(operands[0], second, mask)

    return emit


# `rnds2(cdgh, abef, wk)`: two rounds, with W+K in lanes 0 and 1 of wk; returns the new abef.
rnds2 = _elementwise(3, _x86("sha256rnds2"))
# `msg1(w[t-16..], w[t-12..])`: W[t-16..t-13] plus sigma0 of W[t-15..t-12].
msg1 = _elementwise(2, _x86("sha256msg1"))
# `msg2(x, w[t-4..])`: x plus sigma1 of W[t-2], W[t-1] and of the two words it makes.
msg2 = _elementwise(2, _x86("sha256msg2"))
add = _elementwise(2, lambda builder, ops: builder.add(ops[0], ops[1]))
and_ = _elementwise(2, lambda builder, ops: builder.and_(ops[0], ops[1]))
# `alignr(hi, lo)`: lo[1], lo[2], lo[3], hi[0], the words W[t-7..t-4] of a new message vector.
alignr = _elementwise(2, lambda builder, ops: _shuffle(1, 2, 3, 4)(builder, [ops[1], ops[0]]))
# Each lane's bytes reversed: a little-endian field (the nonce) as a big-endian SHA-256 word.
byteswap = _elementwise(
    1,
    lambda builder, ops: builder.call(
        cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V4, [_V4]), "llvm.bswap.v4i32"
        ),
        ops,
    ),
)
# Lanes 2 and 3 moved to 0 and 1: the wk of the second pair of rounds in a group of four.
high_pair = _elementwise(1, _shuffle(2, 3, 2, 3))
# (abef, cdgh) -> A, B, C, D and E, F, G, H: the state as message or output words.
abcd = _elementwise(2, _shuffle(3, 2, 7, 6))
efgh = _elementwise(2, _shuffle(1, 0, 5, 4))
# (abcd, efgh) -> F, E, B, A and H, G, D, C: words in the instructions' state layout.
to_abef = _elementwise(2, _shuffle(5, 4, 1, 0))
to_cdgh = _elementwise(2, _shuffle(7, 6, 3, 2))


@_intrinsic
def vec(typingctx: Any, w0: types.Type, w1: types.Type, w2: types.Type, w3: types.Type) -> Any:
    """A vector of four integers (truncated to 32 bits), lane 0 first."""
    args = (w0, w1, w2, w3)
    if not all(isinstance(a, types.Integer) for a in args):
        raise TypeError(f"vec() takes four integers, got {args}")

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
        result = ir.Constant(_V4, ir.Undefined)
        for lane, value in enumerate(values):
            word = builder.trunc(value, _I32) if value.type.width > 32 else value
            result = builder.insert_element(result, word, ir.Constant(_I32, lane))
        return result

    return u32x4(*args), codegen


@_intrinsic
def lane(typingctx: Any, v: types.Type, index: types.Type) -> Any:
    """Lane `index` (a constant) of a vector as uint32, or of each stream as a tuple."""
    if not isinstance(index, types.IntegerLiteral):
        return None  # numba retries with the constant's literal type
    streams = _streams(v)
    which = index.literal_value

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
        n = 1 if streams is None else streams
        words = [
            builder.extract_element(x, ir.Constant(_I32, which))
            for x in _split(builder, sig.args[0], values[0], n)
        ]
        return _join(context, builder, sig.return_type, words)

    return _result_type(streams, types.uint32)(v, index), codegen


@_intrinsic
def splat_series(typingctx: Any, first: types.Type, streams: types.Type) -> Any:
    """`streams` (a constant) vectors, stream i holding first + i (mod 2**32) in all lanes."""
    if not isinstance(first, types.Integer) or not isinstance(streams, types.IntegerLiteral):
        return None  # numba retries with the constant's literal type
    n = streams.literal_value
    result_type = types.UniTuple(u32x4, n)

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
        base = values[0]
        base = builder.trunc(base, _I32) if base.type.width > 32 else base
        vectors = []
        for i in range(n):
            word = builder.add(base, ir.Constant(_I32, i))
            one = builder.insert_element(ir.Constant(_V4, ir.Undefined), word, ir.Constant(_I32, 0))
            vectors.append(builder.shuffle_vector(one, one, ir.Constant(_V4, [0, 0, 0, 0])))
        return context.make_tuple(builder, result_type, vectors)

    return result_type(first, streams), codegen


@_intrinsic
def load(typingctx: Any, words: types.Type, index: types.Type) -> Any:
    """words[index : index + 4] of a C-contiguous uint32 array as one vector (no bounds check)."""
    if not (
        isinstance(words, types.Array)
        and words.dtype == types.uint32
        and words.layout == "C"
        and isinstance(index, types.Integer)
    ):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
        array = context.make_array(sig.args[0])(context, builder, values[0])
        first = builder.gep(array.data, [values[1]])
        return builder.load(builder.bitcast(first, _V4.as_pointer()), align=4)

    return u32x4(words, index), codegen


@nb.njit(inline="always")
def four_rounds(abef, cdgh, wk):  # type: ignore[no-untyped-def]
    """Four rounds (FIPS 180-4 6.2.2, step 3), with W[t..t+3] + K[t..t+3] in wk."""
    cdgh = rnds2(cdgh, abef, wk)
    abef = rnds2(abef, cdgh, high_pair(wk))
    return abef, cdgh


@nb.njit(inline="always")
def expand(m0, m1, m2, m3):  # type: ignore[no-untyped-def]
    """W[t..t+3] from W[t-16..t-1] (FIPS 180-4 6.2.2, step 1)."""
    return msg2(add(msg1(m0, m1), alignr(m3, m2)), m3)
