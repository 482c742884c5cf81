import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

/**
 * The limit for a JSON GET: a bare Fastify route answering fixed bytes with the same content type,
 * no auth and no database. Prints its URL once listening.
 */
const [bodyFile, contentType] = process.argv.slice(2);
const body = readFileSync(bodyFile!);
const app = Fastify({ logger: false });
app.get('/*', async (_req, reply) => reply.type(contentType ?? 'application/json; charset=utf-8').send(body));
const url = await app.listen({ host: '127.0.0.1', port: 0 });
console.log(`bare server at ${url}`);
