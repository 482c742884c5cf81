import { describe } from 'vitest';
import { killSuite } from './kill-suite.js';

describe.skipIf(!process.env.CONCORD_TEST_PG)('PostgreSQL', () => killSuite('postgres'));
