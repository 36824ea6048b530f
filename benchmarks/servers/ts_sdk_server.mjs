// The official TypeScript SDK under test: McpServer with one `echo` tool, on express.
//
// Run by Node from the TS SDK's own environment (benchmarks/.node-sdk, made by
// benchmarks/nodeenv.py, which copies this file there so that its imports resolve to
// that environment's node_modules). The command line is the Python servers' (see
// _common.py): --port, --heartbeat, --transport sse|mcp, --max-sessions.
//
// As a user runs the SDK: the app comes from the SDK's createMcpExpressApp (JSON body
// parser, Host check for a loopback bind), every session gets its own McpServer (a
// server connects to one transport), and sessions live in a map by id.
//
// - /sse: SSEServerTransport, GET /sse opens a session, POST /messages?sessionId=...
//   carries the client's messages. That transport sends no heartbeat of its own, so
//   each stream gets the SDK's own keep-alive timer (armSseKeepAlive, the one its
//   Streamable HTTP transport uses) writing a comment every --heartbeat seconds: an
//   idle stream behind a proxy needs one, and the idle figures count them.
// - /mcp: StreamableHTTPServerTransport, stateful (Mcp-Session-Id), replies as event
//   streams (the SDK's default), its own keep-alive set to --heartbeat.
//
// Not applicable here, unlike the Python servers: SIGUSR1 (a full collection) and
// SIGUSR2 (the collector's statistics). They count CPython's collector, and Node
// reserves SIGUSR1 to start its inspector; the harness sends neither to this server and
// its report says n/a. V8 collects on its own schedule.

import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { armSseKeepAlive } from '@modelcontextprotocol/sdk/server/sseKeepAlive.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

// The listen backlog of every server under test (_common.BACKLOG): a burst of connects
// must not be refused by one server and queued by another.
const BACKLOG = 4096;

const { values: options } = parseArgs({
  options: {
    port: { type: 'string' },
    heartbeat: { type: 'string', default: '15' },
    transport: { type: 'string', default: 'sse' },
    'max-sessions': { type: 'string', default: '20000' },
  },
});
if (options.port === undefined || !['sse', 'mcp'].includes(options.transport)) {
  console.error('usage: ts_sdk_server.mjs --port N [--heartbeat S] [--transport sse|mcp]');
  process.exit(2);
}
const port = Number(options.port);
const heartbeatMs = Number(options.heartbeat) * 1000;
const maxSessions = Number(options['max-sessions']);

function makeServer() {
  const server = new McpServer({ name: 'benchmark', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Return the text unchanged.', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  return server;
}

function jsonRpcError(res, status, message) {
  res.status(status).json({ jsonrpc: '2.0', error: { code: -32000, message }, id: null });
}

const app = createMcpExpressApp({ host: '127.0.0.1' });
const sessions = new Map();

if (options.transport === 'sse') {
  app.get('/sse', async (req, res) => {
    if (sessions.size >= maxSessions) {
      jsonRpcError(res, 503, 'too many sessions');
      return;
    }
    const transport = new SSEServerTransport('/messages', res);
    const server = makeServer();
    sessions.set(transport.sessionId, transport);
    const keepAlive = armSseKeepAlive(heartbeatMs, () => res.write(': ping\n\n'));
    res.on('close', () => {
      clearInterval(keepAlive);
      sessions.delete(transport.sessionId);
      server.close().catch(() => {});
    });
    await server.connect(transport); // starts the stream: headers and the endpoint event
  });

  app.post('/messages', async (req, res) => {
    const transport = sessions.get(req.query.sessionId);
    if (transport === undefined) {
      jsonRpcError(res, 404, 'no such session');
      return;
    }
    // The app's JSON parser has read the body already: hand it over.
    await transport.handlePostMessage(req, res, req.body);
  });
} else {
  const handle = async (req, res) => {
    const sessionId = req.headers['mcp-session-id'];
    let transport = sessionId === undefined ? undefined : sessions.get(sessionId);
    if (transport === undefined) {
      if (sessionId !== undefined) {
        jsonRpcError(res, 404, 'no such session');
        return;
      }
      if (req.method !== 'POST' || !isInitializeRequest(req.body)) {
        jsonRpcError(res, 400, 'no session id, and not an initialize request');
        return;
      }
      if (sessions.size >= maxSessions) {
        jsonRpcError(res, 503, 'too many sessions');
        return;
      }
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        keepAliveMs: heartbeatMs,
        onsessioninitialized: (id) => sessions.set(id, created),
      });
      created.onclose = () => {
        if (created.sessionId !== undefined) sessions.delete(created.sessionId);
      };
      await makeServer().connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res, req.body);
  };
  app.post('/mcp', handle);
  app.get('/mcp', handle);
  app.delete('/mcp', handle);
}

app.listen({ host: '127.0.0.1', port, backlog: BACKLOG }, (error) => {
  if (error) {
    console.error(error);
    process.exit(1);
  }
});
