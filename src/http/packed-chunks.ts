/** Chunks at least this long are kept as they come: the cost of another Buffer beside them is small. */
const KEPT_FROM_BYTES = 1024
/** The blocks small chunks are copied into: the first this long, each next one twice the last, up to LARGEST_BLOCK. */
const FIRST_BLOCK = 1024
const LARGEST_BLOCK = 16 * 1024

/**
 * A body read whole, held at about its own size. A client chooses the size of the chunks its body arrives in (a
 * chunked body of one-byte chunks, or one byte per TCP segment), and Node hands each over as a Buffer that costs some
 * 200 bytes of heap beside its content: kept as they came, a body the limits counted as 64 KiB held 15 MB, and a few
 * hundred such bodies from one address, within every byte limit, ran the process out of heap. Small chunks are copied
 * into blocks; `add` and `flush` return the pieces that are complete, in order, for the caller to keep or pass on.
 */
export class PackedChunks {
  #block: Buffer | undefined
  #used = 0
  #nextBlock = FIRST_BLOCK

  /** The pieces `chunk` completes: none while it fits in the block being filled. */
  add(chunk: Buffer): Buffer[] {
    if (chunk.length >= KEPT_FROM_BYTES) return [...this.flush(), chunk]
    if (this.#block && this.#used + chunk.length <= this.#block.length) {
      chunk.copy(this.#block, this.#used)
      this.#used += chunk.length
      return []
    }
    const sealed = this.flush()
    this.#block = Buffer.allocUnsafe(this.#nextBlock)
    this.#nextBlock = Math.min(this.#nextBlock * 2, LARGEST_BLOCK)
    chunk.copy(this.#block, 0)
    this.#used = chunk.length
    return sealed
  }

  /** The block being filled, as far as it is: the last piece, at the body's end. */
  flush(): Buffer[] {
    const block = this.#block
    if (!block) return []
    this.#block = undefined
    return [block.subarray(0, this.#used)]
  }
}
