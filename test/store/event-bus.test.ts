import assert from 'node:assert/strict'
import { after, before, describe, it, mock } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { DatabaseUnavailable } from '../../src/errors.ts'
import { EventBus } from '../../src/store/event-bus.ts'
import { sql } from '../../src/store/kysely.ts'
import type { Store } from '../../src/store/store.ts'
import type { Topic } from '../../src/store/topics.ts'
import { storeBackends, type OpenedStore } from '../helpers/backends.ts'

const sqlite = storeBackends.find((backend) => backend.name === 'SQLite')!

describe('event bus on SQLite: one data_version check per event-loop turn', () => {
  let opened: OpenedStore
  let reader: Store
  let bus: EventBus
  let checks = 0
  const seen: string[] = []

  before(async () => {
    opened = await sqlite.open()
    reader = await opened.reopen()
    const dataVersion = reader.database.dataVersion.bind(reader.database)
    reader.database.dataVersion = () => {
      checks++
      return dataVersion()
    }
    bus = new EventBus(reader)
    bus.on('user', (key) => void seen.push(key))
    await bus.start(60_000)
  })
  after(async () => {
    await bus.stop()
    await reader.close()
    await opened.store.close()
    await opened.cleanup()
  })

  it('answers the requests of one turn with a single check', async () => {
    checks = 0
    await Promise.all([bus.freshen(), bus.freshen(), bus.freshen()])
    assert.equal(checks, 1)
  })

  it('sees a change committed by another process before any request of the turn asked', async () => {
    seen.length = 0
    const first = bus.freshen()
    await new EventBus(opened.store).publish('user', '7')
    const second = bus.freshen()
    await second
    assert.deepEqual(seen, ['7'], 'the request that asked after the commit sees it')
    await first
  })

  it('checks again for a request that asks after the previous check ran', async () => {
    seen.length = 0
    await bus.freshen()
    checks = 0
    await new EventBus(opened.store).publish('user', '8')
    await bus.freshen()
    assert.equal(checks, 1)
    assert.deepEqual(seen, ['8'])
  })
})

describe('event bus on SQLite: how long what was read is trusted', () => {
  it('stops trusting it once the log has not been read for maxStaleMs, though the wall clock stepped back meanwhile', async () => {
    const opened = await sqlite.open()
    const reader = await opened.reopen()
    const bus = new EventBus(reader, { maxStaleMs: 300 })
    const machineNow = Date.now
    try {
      await bus.start(50)
      await bus.freshen()
      assert.equal(bus.fresh(), true)
      // An NTP step or a virtual machine resumed sets the clock back an hour, then the database stops answering.
      mock.method(Date, 'now', () => machineNow() - 3600_000)
      await sleep(100)
      const unreachable = () => {
        throw new DatabaseUnavailable('unreachable')
      }
      reader.database.dataVersion = unreachable
      reader.events.after = async () => unreachable()
      await sleep(500)
      await bus.freshen().catch(() => {})
      assert.equal(bus.fresh(), false, 'what was read before the outage is trusted past maxStaleMs')
      assert.ok(bus.status().sinceReadMs! > 300)
    } finally {
      mock.restoreAll()
      await bus.stop()
      await reader.close()
      await opened.store.close()
      await opened.cleanup()
    }
  })
})

/** What a test of a reading process is given: it records the keys it applies of one topic and each flush. */
interface Reading {
  opened: OpenedStore
  /** Another process on the same database. */
  writer: EventBus
  bus: EventBus
  applied: string[]
  missed: () => number
}

async function withReader(backend: (typeof storeBackends)[number], topic: Topic, test: (reading: Reading) => Promise<void>): Promise<void> {
  const opened = await backend.open()
  const writer = new EventBus(opened.store)
  const reader = await opened.reopen()
  const bus = new EventBus(reader)
  const applied: string[] = []
  let missed = 0
  bus.on(topic, (key) => void applied.push(key))
  bus.onMissed(() => void missed++)
  try {
    await test({ opened, writer, bus, applied, missed: () => missed })
  } finally {
    await bus.stop()
    await reader.close()
    await opened.store.close()
    await opened.cleanup()
  }
}

for (const backend of storeBackends) {
  describe(`event bus on ${backend.name}: a process that starts`, () => {
    it('does not apply again what was announced before it started, and applies what comes after', () => withReader(backend, 'token', async ({ writer, bus, applied }) => {
      await writer.publish('token', 'all')
      await bus.start(60_000)
      await bus.sync()
      assert.deepEqual(applied, [], 'the revocation before the start is not applied again')
      await writer.publish('token', '9')
      await bus.sync()
      assert.deepEqual(applied, ['9'])
    }))
  })
}

for (const backend of storeBackends) {
  describe(`event bus on ${backend.name}: what rests on many cached things`, () => {
    it('is told after news is applied, its own process\'s or another\'s, and after a flush for news it missed', () => withReader(backend, 'token', async ({ opened, writer, bus, applied }) => {
      let told = 0
      let appliedWhenTold: string[] = []
      bus.onApplied(() => {
        told++
        appliedWhenTold = [...applied]
      })
      await bus.start(60_000)
      await bus.sync()
      assert.equal(told, 0, 'nothing is told while nothing changed')
      await writer.publish('token', '1')
      await bus.sync()
      assert.equal(told, 1, 'another process\'s news')
      assert.deepEqual(appliedWhenTold, ['1'], 'told once the news\'s listeners have run')
      await bus.publish('token', '2')
      assert.equal(told, 2, 'its own news, before the change returns')
      assert.deepEqual(appliedWhenTold, ['1', '2'])
      await opened.store.events.append('token', '3')
      await opened.store.events.prune(-60_000)
      await opened.store.events.append('token', '4')
      await bus.sync()
      assert.ok(told >= 3, 'a flush for pruned news it never read')
    }))
  })
}

for (const backend of storeBackends) {
  describe(`event bus on ${backend.name}: news lost from the log`, () => {
    it('flushes when events it had not read were pruned, and not for ids no commit used', () => withReader(backend, 'token', async ({ opened, writer, bus, applied, missed }) => {
      await writer.publish('token', '1')
      await bus.start(60_000)
      await bus.sync() // the read a start begins on PostgreSQL, done before the events below are written
      // Written without a push, so that only `sync` reads them. An id no commit used (a rolled-back transaction's)
      // leaves a hole with older events still in the log.
      const unused = await opened.store.events.append('token', '2')
      await opened.store.events.append('token', '3')
      await opened.store.database.db.deleteFrom('events').where('id', '=', unused).execute()
      await bus.sync()
      assert.deepEqual(applied, ['3'])
      assert.equal(missed(), 0, 'a hole with older events left is no lost news')

      await opened.store.events.append('token', '4')
      await opened.store.events.append('token', '5')
      await opened.store.events.prune(-60_000)
      await bus.sync()
      assert.equal(missed(), 1, 'the pruned revocation it never read is noticed')
      assert.deepEqual(applied, ['3', '5'])
      await bus.sync()
      assert.equal(missed(), 1, 'and noticed once')
    }))

    it('applies news of a transaction that commits after many later ids were read, as a revocation must not be lost', { skip: backend.name === 'SQLite' && 'one writer at a time: a transaction commits before the next takes an id' }, () => withReader(backend, 'token', async ({ opened, bus, applied, missed }) => {
      await bus.start(60_000)
      await bus.sync()
      // A change whose news took its id first and commits last (a slow commit, a transaction with much news), while
      // more than a short window of later events are committed and read.
      let commit!: () => void
      const committing = new Promise<void>((resolve) => (commit = resolve))
      let holding!: () => void
      const held = new Promise<void>((resolve) => (holding = resolve))
      const late = opened.store.transaction(async (tx) => {
        await tx.events.append('token', 'late')
        holding()
        await committing
      })
      await held
      const later = Array.from({ length: 120 }, (_, i) => String(i))
      for (const key of later) await opened.store.events.append('token', key)
      await bus.sync()
      assert.deepEqual(applied, later)
      commit()
      await late
      await bus.sync()
      assert.deepEqual(applied, [...later, 'late'], 'the late news is applied')
      assert.equal(missed(), 0)
    }))

    it('flushes, and reads on, when the log goes back in time (a backup restored, a failover that lost commits)', () => withReader(backend, 'token', async ({ opened, bus, applied, missed }) => {
      const log = opened.store.events
      const kept = await log.append('token', '1')
      await bus.start(60_000)
      await bus.sync()
      await log.append('token', '2')
      await log.append('token', '3')
      await bus.sync()
      assert.deepEqual(applied, ['2', '3'])

      // The database as it was after the first event: the ids of the lost ones are handed out again.
      const { db } = opened.store.database
      await db.deleteFrom('events').where('id', '>', kept).execute()
      if (backend.name === 'PostgreSQL') await sql`alter table events alter column id restart with ${sql.raw(String(kept + 1))}`.execute(db)
      else await sql`update sqlite_sequence set seq = ${kept} where name = 'events'`.execute(db)
      await log.append('token', '4')
      await bus.sync()
      assert.equal(missed(), 1, 'what it read is gone from the log: it flushes')
      await log.append('token', '5')
      await bus.sync()
      assert.deepEqual(applied, ['2', '3', '5'], 'news under ids it had read before is applied')
      assert.equal(missed(), 1)
    }))
  })
}

for (const backend of storeBackends) {
  describe(`event bus on ${backend.name}: a change with much news`, () => {
    it('delivers every event of one transaction, far past what a NOTIFY payload holds, in order, and none of one rolled back', () => withReader(backend, 'session', async ({ writer, bus, applied }) => {
      await bus.start(60_000)
      await bus.sync()
      // 2,500 keys of 64 characters: 160 kB of news, twenty times PostgreSQL's 8,000-byte payload limit.
      const keys = Array.from({ length: 2500 }, (_, n) => String(n).padStart(64, '0'))
      await assert.rejects(writer.change(async (_tx, announce) => {
        announce('session', 'rolled-back')
        throw new Error('the change fails')
      }), /the change fails/)
      await writer.change(async (_tx, announce) => {
        for (const key of keys) announce('session', key)
      })
      await bus.sync()
      assert.deepEqual(applied, keys)
    }))
  })
}

for (const backend of storeBackends) {
  describe(`event bus on ${backend.name}: other processes`, () => {
    it('counts the other processes on the database from their heartbeats, and forgets one that stopped', async () => {
      const opened = await backend.open()
      const second = await opened.reopen()
      const first = new EventBus(opened.store)
      const other = new EventBus(second)
      try {
        assert.equal(first.otherProcesses, 1, 'before it has counted, a process assumes another')
        await first.start(60_000)
        assert.equal(first.otherProcesses, 0, 'alone on the database')
        await other.start(60_000)
        assert.equal(other.otherProcesses, 1, 'the second counts the first at once')
        await waitFor(() => first.otherProcesses === 1, 'the first counts the second by its next heartbeat')
        await other.stop()
        await waitFor(() => first.otherProcesses === 0, 'a process that stopped is no longer counted')
      } finally {
        await other.stop()
        await first.stop()
        await second.close()
        await opened.store.close()
        await opened.cleanup()
      }
    })

    it('judges which processes are alive by the database clock, whatever the clocks of the processes say', async () => {
      const opened = await backend.open()
      const second = await opened.reopen()
      const behind = new EventBus(opened.store)
      const other = new EventBus(second)
      const realNow = Date.now
      try {
        // A process whose clock runs a minute behind, then one whose clock runs a minute ahead.
        Date.now = () => realNow() - 60_000
        await behind.start(60_000)
        Date.now = () => realNow() + 60_000
        await other.start(60_000)
        assert.equal(other.otherProcesses, 1, 'a process with a slow clock is alive all the same')
      } finally {
        Date.now = realNow
        await other.stop()
        await behind.stop()
        await second.close()
        await opened.store.close()
        await opened.cleanup()
      }
    })
  })
}

async function waitFor(condition: () => boolean, message: string): Promise<void> {
  const deadline = Date.now() + 5000
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(message)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const postgres = storeBackends.find((backend) => backend.name === 'PostgreSQL')!

describe('event bus on PostgreSQL: the clock credentials are stamped with', () => {
  const databaseTime = (store: Store) => store.events.databaseTime()

  for (const skewMs of [60_000, -60_000]) {
    it(`follows the database's clock, never ahead of it, on a process whose clock runs a minute ${skewMs > 0 ? 'ahead' : 'behind'}`, async () => {
      const opened = await postgres.open()
      const writerStore = await opened.reopen()
      const writer = new EventBus(writerStore)
      const bus = new EventBus(opened.store)
      const realNow = Date.now
      try {
        Date.now = () => realNow() + skewMs
        await bus.start(60_000)
        const before = await databaseTime(opened.store)
        const stamp = bus.clock.now()
        const after = await databaseTime(opened.store)
        assert.ok(stamp <= after, `${stamp} is not after the database's ${after}`)
        assert.ok(stamp > before - 5000, `${stamp} is far behind the database's ${before}`)
        // News read from another process raises it to at least the time the database gave that news.
        await writer.change(async (_tx, announce) => announce('user', '1'))
        await bus.sync()
        const { rows } = await sql<{ created_at: number }>`select created_at from events order by id desc limit 1`.execute(opened.store.database.db)
        assert.ok(bus.clock.now() >= Number(rows[0]!.created_at))
        assert.ok(bus.clock.now() <= await databaseTime(opened.store))
      } finally {
        Date.now = realNow
        await bus.stop()
        await writerStore.close()
        await opened.store.close()
        await opened.cleanup()
      }
    })
  }
})

describe('event bus on PostgreSQL: waiting for other processes to confirm a change', () => {
  /** A publishing process whose checks for processes that have not yet read the news are counted. */
  async function counting(opened: OpenedStore): Promise<{ bus: EventBus; checks: () => number }> {
    let checks = 0
    const lagging = opened.store.events.lagging.bind(opened.store.events)
    opened.store.events.lagging = (...args) => {
      checks++
      return lagging(...args)
    }
    const bus = new EventBus(opened.store)
    await bus.start(60_000)
    return { bus, checks: () => checks }
  }

  it('asks the database a few dozen times, not hundreds, while a process alive but stalled never confirms', async () => {
    const opened = await postgres.open()
    const stalled = await opened.reopen()
    const { bus, checks } = await counting(opened)
    try {
      // Alive (a heartbeat just now) and never reading on.
      await stalled.events.heartbeat('stalled-process', 0)
      const started = performance.now()
      await bus.publish('token', 'one')
      assert.ok(performance.now() - started >= 900, 'it waited for the stalled process')
      assert.ok(checks() <= 40, `${checks()} checks`)
    } finally {
      await bus.stop()
      await stalled.close()
      await opened.store.close()
      await opened.cleanup()
    }
  })

  it('does not count a process as having read news it read past before the news committed, until it has', async () => {
    const opened = await postgres.open()
    const second = await opened.reopen()
    const reader = new EventBus(second)
    const applied: string[] = []
    reader.on('token', (key) => void applied.push(key))
    await reader.start(60_000)
    // A change whose news took its id, still to commit, while later news commits and is read.
    let commit!: () => void
    const committing = new Promise<void>((resolve) => (commit = resolve))
    let took!: (id: number) => void
    const tookId = new Promise<number>((resolve) => (took = resolve))
    const late = opened.store.transaction(async (tx) => {
      took((await tx.events.appendStamped('token', 'late')).id)
      await committing
    })
    try {
      const lateId = await tookId
      await opened.store.events.append('token', 'later')
      await reader.sync()
      assert.deepEqual(applied, ['later'])
      // A publisher of the late news, once committed, must wait for this process: it has not read that id.
      assert.equal(await opened.store.events.lagging(lateId, 5000, 'no such process'), 1)
      commit()
      await late
      await reader.sync()
      assert.deepEqual(applied, ['later', 'late'])
      assert.equal(await opened.store.events.lagging(lateId + 1, 5000, 'no such process'), 0, 'confirmed once read')
    } finally {
      commit()
      await late
      await reader.stop()
      await second.close()
      await opened.store.close()
      await opened.cleanup()
    }
  })

  it('tells the others of ids a change took and gave up, so that they do not hold publishers back for them', async () => {
    const opened = await postgres.open()
    const second = await opened.reopen()
    const publisher = new EventBus(opened.store)
    const reader = new EventBus(second)
    await publisher.start(60_000)
    await reader.start(60_000)
    const { db } = opened.store.database
    // A change whose news is refused at its commit: its ids were taken, and no event will hold them.
    await sql.raw(`CREATE FUNCTION test_refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.key = 'refused at commit' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NULL; END $$`).execute(db)
    await sql.raw('CREATE CONSTRAINT TRIGGER test_refuse_commit AFTER INSERT ON events DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse_commit()').execute(db)
    try {
      await assert.rejects(publisher.publish('token', 'refused at commit'))
      const refusedAt = performance.now()
      await publisher.publish('token', 'after it')
      const latest = await opened.store.events.latestId()
      // The reader confirms the next news once it has read it, not only once the given-up id is waited out (2 s).
      while ((await opened.store.events.lagging(latest, 5000, 'no such process')) > 0) {
        assert.ok(performance.now() - refusedAt < 1500, 'still held back by the given-up id')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    } finally {
      await sql.raw('DROP TRIGGER test_refuse_commit ON events').execute(db)
      await sql.raw('DROP FUNCTION test_refuse_commit()').execute(db)
      await reader.stop()
      await publisher.stop()
      await second.close()
      await opened.store.close()
      await opened.cleanup()
    }
  })

  it('returns as soon as a reading process confirms, after a check or two', async () => {
    const opened = await postgres.open()
    const second = await opened.reopen()
    const { bus, checks } = await counting(opened)
    const reader = new EventBus(second)
    await reader.start(60_000)
    try {
      for (let i = 0; i < 5; i++) await bus.publish('token', `warm-${i}`)
      const before = checks()
      const started = performance.now()
      await bus.publish('token', 'two')
      assert.ok(performance.now() - started < 500, 'well before the wait for a stalled process ends')
      assert.ok(checks() - before <= 10, `${checks() - before} checks`)
    } finally {
      await reader.stop()
      await bus.stop()
      await second.close()
      await opened.store.close()
      await opened.cleanup()
    }
  })
})
