'use strict'
// The node-postgres client of the live conformance kit (see ../PROTOCOL.md).
//
// It reads one JSON request per line on standard input, connects with node-postgres (`pg`)
// using the request's libpq URI as `connectionString`, asks the server whether the session is
// encrypted, and answers one JSON line on standard output. Nothing else is written there.
//
// Parameter mapping, as a node-postgres user would do it:
//   - the URI goes to `new pg.Client({connectionString})` unchanged: pg-connection-string reads
//     sslmode, sslrootcert, sslcert, sslkey and application_name with its own semantics, and
//     ignores hostaddr (the host name is resolved by Node);
//   - connect_timeout is not used by the pure-JavaScript client; its own setting is the
//     `connectionTimeoutMillis` option, which gets connect_timeout (in milliseconds), kept a
//     little below the harness's wait;
//   - home: node-postgres has no ~/.postgresql default (it only reads ~/.pgpass when no
//     password is given), so the request's home is not used.
//
// The driver comes from Debian's node-pg, unpacked under target/clients/node-postgres by
// install.sh and found through NODE_PATH (see client.yaml).

const readline = require('readline')
const pg = require('pg')

function firstLine(text) {
  let s = String(text == null ? '' : text).trim().split('\n')[0]
  if (!s) s = 'error without a message'
  return s.length > 2000 ? s.slice(0, 2000) : s
}

function errorText(err) {
  if (err && typeof err === 'object') {
    const parts = []
    if (err.message) parts.push(err.message)
    else parts.push(String(err))
    if (err.code && !String(err.message || '').includes(err.code)) parts.push('(' + err.code + ')')
    return parts.join(' ')
  }
  return String(err)
}

async function run(req) {
  const budgetMs = Math.max(1000, Math.round((Number(req.timeout_s) || 20) * 1000) - 2000)
  const params = req.params || {}
  let timeoutMs = budgetMs
  const ct = parseInt(params.connect_timeout, 10)
  if (ct > 0) timeoutMs = Math.min(ct * 1000, budgetMs)

  let client
  try {
    client = new pg.Client({ connectionString: req.uri, connectionTimeoutMillis: timeoutMs })
  } catch (err) {
    return { outcome: 'fail', message: firstLine(errorText(err)) }
  }
  // A connection error after connect() settled must not end the process.
  client.on('error', (err) => process.stderr.write('node-postgres client: ' + firstLine(errorText(err)) + '\n'))

  let timer
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('no answer from the driver in ' + budgetMs + ' ms')), budgetMs + 500)
  })
  try {
    const work = (async () => {
      await client.connect()
      const res = await client.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')
      return res.rows.length > 0 && res.rows[0].ssl === true ? 'tls' : 'plain'
    })()
    work.catch(() => {})
    const outcome = await Promise.race([work, guard])
    return { outcome, message: null }
  } catch (err) {
    return { outcome: 'fail', message: firstLine(errorText(err)) }
  } finally {
    clearTimeout(timer)
    try {
      await Promise.race([client.end(), new Promise((resolve) => setTimeout(resolve, 2000))])
    } catch (_) {
      // closing a connection that never opened
    }
  }
}

process.on('uncaughtException', (err) => {
  process.stderr.write('node-postgres client: uncaught: ' + firstLine(errorText(err)) + '\n')
})
process.on('unhandledRejection', (err) => {
  process.stderr.write('node-postgres client: unhandled rejection: ' + firstLine(errorText(err)) + '\n')
})

async function main() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false })
  for await (const line of rl) {
    if (!line.trim()) continue
    let req
    let reply
    try {
      req = JSON.parse(line)
    } catch (err) {
      process.stderr.write('node-postgres client: bad request line: ' + firstLine(errorText(err)) + '\n')
      reply = { id: null, outcome: 'fail', message: 'bad request: ' + firstLine(errorText(err)) }
    }
    if (req) {
      let result
      try {
        result = await run(req)
      } catch (err) {
        result = { outcome: 'fail', message: firstLine(errorText(err)) }
      }
      reply = { id: req.id, outcome: result.outcome, message: result.message }
    }
    process.stdout.write(JSON.stringify(reply) + '\n')
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write('node-postgres client: ' + firstLine(errorText(err)) + '\n')
    process.exit(1)
  }
)
