"""Eight uint32 lanes as one numba value (LLVM `<8 x i32>`, a ymm register) for SIMD SHA-256.

`+`, `^`, `&`, `|`, `~` and `>>` work lane by lane, modulo 2**32, on two `u32x8` values or on
one and an integer (used in every lane), so SHA-256 reads as it does for one word. numba widens
plain uint32 arithmetic to 64 bits, which is why the lanes are a type of their own: every
operation stays 32 bits wide and LLVM keeps all eight lanes in one register.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

LANES = 8

_I32 = ir.IntType(32)
_V8 = ir.VectorType(_I32, LANES)


def _intrinsic(definition: Callable[..., Any]) -> Any:
    """numba's `intrinsic`, typed for callers: compiled code calls it with values, not types."""
    return intrinsic(definition)


class U32x8Type(types.Type):
    """Eight uint32 lanes, LLVM's `<8 x i32>`."""

    def __init__(self) -> None:
        super().__init__(name="u32x8")


u32x8 = U32x8Type()


@register_model(U32x8Type)
class _U32x8Model(models.PrimitiveModel):
    def __init__(self, dmm: Any, fe_type: U32x8Type) -> None:
        super().__init__(dmm, fe_type, _V8)


def _word(builder: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """An integer truncated or zero-extended to 32 bits."""
    if value.type.width > 32:
        return builder.trunc(value, _I32)
    if value.type.width < 32:
        return builder.zext(value, _I32)
    return value


def _broadcast(builder: ir.IRBuilder, word: ir.Value) -> ir.Value:
    one = builder.insert_element(ir.Constant(_V8, ir.Undefined), word, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, one, ir.Constant(_V8, [0] * LANES))


def _operand(builder: ir.IRBuilder, ty: types.Type, value: ir.Value) -> ir.Value:
    return value if ty == u32x8 else _broadcast(builder, _word(builder, value))


def _binary(emit: Callable[[ir.IRBuilder, ir.Value, ir.Value], ir.Value]) -> Any:
    """An intrinsic on two operands, each u32x8 or an integer used in every lane."""

    def typer(typingctx: Any, x: types.Type, y: types.Type) -> Any:
        if u32x8 not in (x, y) or not all(
            t == u32x8 or isinstance(t, types.Integer) for t in (x, y)
        ):
            return None

        def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
            left, right = (_operand(builder, t, v) for t, v in zip(sig.args, values, strict=True))
            return emit(builder, left, right)

        return u32x8(x, y), codegen

    return _intrinsic(typer)


_add = _binary(lambda builder, x, y: builder.add(x, y))
_xor = _binary(lambda builder, x, y: builder.xor(x, y))
_and = _binary(lambda builder, x, y: builder.and_(x, y))
_or = _binary(lambda builder, x, y: builder.or_(x, y))
_shr = _binary(lambda builder, x, y: builder.lshr(x, y))


@_intrinsic
def _invert(typingctx: Any, x: types.Type) -> Any:
    if x != u32x8:
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
        return builder.not_(values[0])

    return u32x8(x), codegen


def _operator(op: Any, impl: Any) -> None:
    # numba wants an overload's signature to equal its implementation's, annotations included.
    @overload(op)
    def _overload(x, y):  # type: ignore[no-untyped-def]
        if u32x8 in (x, y):
            return lambda x, y: impl(x, y)
        return None


_operator(operator.add, _add)
_operator(operator.xor, _xor)
_operator(operator.and_, _and)
_operator(operator.or_, _or)
_operator(operator.rshift, _shr)


@overload(operator.invert)
def _overload_invert(x):  # type: ignore[no-untyped-def]
    if x == u32x8:
        return lambda x: _invert(x)
    return None


@_intrinsic
def rotr(typingctx: Any, x: types.Type, n: types.Type) -> Any:
    """Each lane rotated right by n bits (a funnel shift: one instruction where there is one)."""
    if x != u32x8 or not isinstance(n, types.Integer):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V8, [_V8] * 3), "llvm.fshr.v8i32"
        )
        amount = _broadcast(builder, _word(builder, values[1]))
        return builder.call(fn, [values[0], values[0], amount])

    return u32x8(x, n), codegen


@_intrinsic
def byteswap(typingctx: Any, x: types.Type) -> Any:
    """Each lane's bytes reversed: a little-endian field as a big-endian SHA-256 word."""
    if x != u32x8:
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V8, [_V8]), "llvm.bswap.v8i32"
        )
        return builder.call(fn, values)

    return u32x8(x), codegen


@_intrinsic
def splat(typingctx: Any, x: types.Type) -> Any:
    """An integer (truncated to 32 bits) in every lane."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
        return _broadcast(builder, _word(builder, values[0]))

    return u32x8(x), codegen


@_intrinsic
def series(typingctx: Any, first: types.Type) -> Any:
    """first, first + 1, ..., first + 7 in lanes 0..7, modulo 2**32."""
    if not isinstance(first, types.Integer):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
        base = _broadcast(builder, _word(builder, values[0]))
        return builder.add(base, ir.Constant(_V8, list(range(LANES))))

    return u32x8(first), codegen


@_intrinsic
def lane(typingctx: Any, v: types.Type, index: types.Type) -> Any:
    """Lane `index` of a u32x8 as uint32."""
    if v != u32x8 or not isinstance(index, types.Integer):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
        return builder.extract_element(values[0], _word(builder, values[1]))

    return types.uint32(v, index), codegen


def _array_slot(context: Any, builder: ir.IRBuilder, ty: Any, array: Any, index: Any) -> Any:
    data = context.make_array(ty)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [index]), _V8.as_pointer())


def _is_words(words: types.Type) -> bool:
    return isinstance(words, types.Array) and words.dtype == types.uint32 and words.layout == "C"


@_intrinsic
def load(typingctx: Any, words: types.Type, index: types.Type) -> Any:
    """words[index : index + 8] of a C-contiguous uint32 array (no bounds check)."""
    if not _is_words(words) or not isinstance(index, types.Integer):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
        return builder.load(_array_slot(context, builder, sig.args[0], *values), align=4)

    return u32x8(words, index), codegen


@_intrinsic
def store(typingctx: Any, words: types.Type, index: types.Type, v: types.Type) -> Any:
    """words[index : index + 8] = v, for a C-contiguous uint32 array (no bounds check)."""
    if not _is_words(words) or not isinstance(index, types.Integer) or v != u32x8:
        return None

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, values: Any) -> ir.Value:
        slot = _array_slot(context, builder, sig.args[0], values[0], values[1])
        builder.store(values[2], slot, align=4)
        return context.get_dummy_value()

    return types.none(words, index, v), codegen
