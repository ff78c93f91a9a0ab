#!/usr/bin/env python3
"""Writes reduce8.s: one 8-row block of the Montgomery reduction for crates/mont2048-x86.

Run from this directory: `python3 gen_reduce8.py > reduce8.s` (the output is committed; the
kernel includes it with include_str!). The algorithm and its register and memory contract are
described in src/x86.rs at `reduce`.

Registers: r14 = T (the block's first limb t[i0]), r15 = the Modulus (p limbs at 0..256, n0'
at 256). Window (8 accumulator limbs, rotating): rax rcx rsi rdi r8 r9 r10 r11; r12/r13 the
mulx low/high halves; rdx the digit. Memory: [T - 8] carry word from the previous block,
[T - 16] scratch for the chunk-merge carry, [T + 8r] (r < 8) the digits m_r after chunk 0,
[T + 56] the carry word handed to the next block.
"""

WINDOW = ["rax", "rcx", "rsi", "rdi", "r8", "r9", "r10", "r11"]
LO, HI = "r12", "r13"


def q(off):
    return f"qword ptr [r14 + {off}]" if off >= 0 else f"qword ptr [r14 - {-off}]"


def main():
    out = []
    emit = out.append
    w = list(WINDOW)
    # Chunk 0 window: t[i0 .. i0 + 8]; no merge carry yet.
    for k in range(8):
        emit(f"mov {w[k]}, {q(8 * k)}")
    emit(f"mov {q(-16)}, 0")
    for c in range(4):
        if c >= 1:
            # Merge t[i0 + 8c .. + 8] into the window, carry-in from scratch, carry-out back.
            emit(f"mov {LO}, {q(-16)}")
            emit(f"neg {LO}")  # CF = (scratch != 0)
            for k in range(8):
                emit(f"adc {w[k]}, {q(8 * (8 * c + k))}")
            emit(f"mov {LO}, 0")
            emit(f"adc {LO}, 0")
            emit(f"mov {q(-16)}, {LO}")
        for r in range(8):
            pos = 8 * c + r
            if c == 0:
                emit(f"mov rdx, {w[0]}")
                emit("imul rdx, qword ptr [r15 + 256]")
                emit(f"mov {q(8 * r)}, rdx")
            else:
                emit(f"mov rdx, {q(8 * r)}")
            emit(f"xor {LO}d, {LO}d")
            for k in range(8):
                emit(f"mulx {HI}, {LO}, qword ptr [r15 + {8 * (8 * c + k)}]")
                emit(f"adcx {w[k]}, {LO}")
                if k == 0:
                    # Limb `pos` is final for this block; in chunk 0 it is 0 by choice of m_r.
                    if c >= 1:
                        emit(f"mov {q(8 * pos)}, {w[0]}")
                    emit(f"mov {w[0]}, 0")  # reused as the row's new top limb
                emit(f"adox {w[k + 1] if k < 7 else w[0]}, {HI}")
            emit(f"adc {w[0]}, 0")
            w = w[1:] + w[:1]
    # Final merge: window (limbs 32..40 of the block) + memory + scratch carry + previous
    # block's carry word; the carry out is the next block's carry word.
    emit(f"mov {LO}, {q(-16)}")
    emit(f"add {LO}, {q(-8)}")
    emit(f"add {w[0]}, {LO}")
    for k in range(1, 8):
        emit(f"adc {w[k]}, 0")
    emit(f"mov {HI}, 0")
    emit(f"adc {HI}, 0")
    emit(f"add {w[0]}, {q(256)}")
    for k in range(1, 8):
        emit(f"adc {w[k]}, {q(256 + 8 * k)}")
    emit(f"adc {HI}, 0")
    for k in range(8):
        emit(f"mov {q(256 + 8 * k)}, {w[k]}")
    emit(f"mov {q(56)}, {HI}")
    print("\n".join(out))


main()
