// One hashing thread's side of src/directory/hashing-threads.ts, which starts it and whose messages it answers. It is
// JavaScript, not TypeScript, so that the thread does not load Node's type stripping: about 4-9 MB less for each.
import { pbkdf2Sync, timingSafeEqual } from 'node:crypto'
import { setPriority } from 'node:os'
import { parentPort, workerData } from 'node:worker_threads'
import { hashSync, verifySync } from '@node-rs/argon2'

const { options, nice, abandoned, hashed } = workerData.hashingThread

function setNice(value) {
  try {
    // On Linux a thread's nice is its own: this sets this thread's only.
    setPriority(value)
  } catch {
    // Refused (raising a priority takes a privilege): the thread keeps the one it has.
  }
}

// A hash that does not parse is no match.
function verifies(hash, password) {
  try {
    return verifySync(hash, password)
  } catch {
    return false
  }
}

// An imported PBKDF2 hash (src/directory/pbkdf2-hashes.ts), read and bounded before it was handed over; compared in
// constant time.
function pbkdf2Verifies({ digest, iterations, salt, key }, password) {
  const expected = Buffer.from(key)
  return timingSafeEqual(pbkdf2Sync(password, Buffer.from(salt), iterations, expected.length, digest), expected)
}

function run(message) {
  if (message.op === 'hash') return hashSync(message.password, options)
  if (message.op === 'pbkdf2') return pbkdf2Verifies(message.hash, message.password)
  return verifies(message.hash, message.password)
}

if (nice !== undefined) setNice(nice)

// Each job in turn, synchronously; one abandoned before its turn (its place's flag set) is answered without a hash.
parentPort.on('message', (message) => {
  if (message.op === 'nice') return setNice(message.nice)
  const { id } = message
  if (Atomics.load(abandoned, message.place) === 1) return parentPort.postMessage({ id, abandoned: true })
  let reply
  try {
    reply = { id, result: run(message) }
  } catch (error) {
    reply = { id, error: error instanceof Error ? error.message : String(error) }
  }
  Atomics.add(hashed, 0, 1)
  parentPort.postMessage(reply)
})
