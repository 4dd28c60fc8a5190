// One hashing thread's side of src/directory/hashing-threads.ts, which starts it and whose messages it answers. It is
// JavaScript, not TypeScript, so that the thread does not load Node's type stripping: about 4-9 MB less for each.
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

if (nice !== undefined) setNice(nice)

// Each job in turn, synchronously; one abandoned before its turn (its place's flag set) is answered without a hash.
parentPort.on('message', (message) => {
  if (message.op === 'nice') return setNice(message.nice)
  const { id } = message
  if (Atomics.load(abandoned, message.place) === 1) return parentPort.postMessage({ id, abandoned: true })
  let reply
  try {
    reply = { id, result: message.op === 'hash' ? hashSync(message.password, options) : verifies(message.hash, message.password) }
  } catch (error) {
    reply = { id, error: error instanceof Error ? error.message : String(error) }
  }
  Atomics.add(hashed, 0, 1)
  parentPort.postMessage(reply)
})
