import t from 'tap';
import { joinAuthorizer } from './join-authorizer.js';
import { hashNodePassword, type NodePasswordStore } from './node-passwords.js';
import { formatToken } from './token.js';

const caHash = 'a'.repeat(64);
const joinToken = formatToken({ caHash, role: 'server', secret: 'join-secret-0123' });
const adminToken = formatToken({ caHash, role: 'admin', secret: 'admin-secret-012' });
const PW = 'p'.repeat(32);

/** A password store in memory; `failing` makes every call reject. */
function memoryStore(): NodePasswordStore & { map: Map<string, string>; failing: boolean } {
  const map = new Map<string, string>();
  const store = {
    map,
    failing: false,
    async get(node: string) {
      if (store.failing) throw new Error('disk gone');
      return map.get(node);
    },
    async set(node: string, hash: string) {
      if (store.failing) throw new Error('disk gone');
      map.set(node, hash);
    },
    async delete(node: string) {
      map.delete(node);
    },
  };
  return store;
}

t.test('the token is checked first (401), then the name and password (400)', async (t) => {
  const passwords = memoryStore();
  const authorize = joinAuthorizer({ joinToken, passwords });
  const refused401 = { accept: false, status: 401, reason: 'invalid join token' };
  t.same(await authorize({ token: '', node: 'pi1', password: PW }), refused401);
  t.same(await authorize({ token: adminToken, node: 'pi1', password: PW }), refused401, 'admin is not join');
  const wrong = formatToken({ caHash, role: 'server', secret: 'not-the-secret' });
  t.same(await authorize({ token: wrong, node: 'pi1', password: PW }), refused401);
  t.same(await authorize({ token: 'garbage', node: '', password: '' }), refused401, 'before the name');
  const refused400 = {
    accept: false,
    status: 400,
    reason: 'missing or invalid node name or node password',
  };
  t.same(await authorize({ token: joinToken, node: '', password: PW }), refused400);
  t.same(await authorize({ token: joinToken, node: '-pi', password: PW }), refused400);
  t.same(await authorize({ token: joinToken, node: 'pi1', password: 'short' }), refused400);
  t.equal(passwords.map.size, 0, 'nothing recorded for a refused attempt');
});

t.test('a first join records the password; another password for the name is 403', async (t) => {
  const passwords = memoryStore();
  const authorize = joinAuthorizer({ joinToken, passwords });
  t.same(await authorize({ token: joinToken, node: 'pi1', password: PW }), { accept: true, node: 'pi1' });
  t.ok(passwords.map.has('pi1'));
  t.same(await authorize({ token: joinToken, node: 'pi1', password: PW }), { accept: true, node: 'pi1' });
  t.same(await authorize({ token: joinToken, node: 'pi1', password: 'q'.repeat(32) }), {
    accept: false,
    status: 403,
    reason: 'node pi1 is already registered with another password',
    node: 'pi1',
  });
  passwords.map.set('pi2', hashNodePassword(PW));
  t.same(await authorize({ token: joinToken, node: 'pi2', password: PW }), { accept: true, node: 'pi2' });
});

t.test('two first joins under one name at once: one wins', async (t) => {
  const authorize = joinAuthorizer({ joinToken, passwords: memoryStore() });
  const [a, b] = await Promise.all([
    authorize({ token: joinToken, node: 'pi1', password: PW }),
    authorize({ token: joinToken, node: 'pi1', password: 'q'.repeat(32) }),
  ]);
  t.same(a, { accept: true, node: 'pi1' });
  t.match(b, { accept: false, status: 403 });
});

t.test('a failing password store is a 500, and the next attempt is judged afresh', async (t) => {
  const passwords = memoryStore();
  const authorize = joinAuthorizer({ joinToken, passwords });
  passwords.failing = true;
  t.same(await authorize({ token: joinToken, node: 'pi1', password: PW }), {
    accept: false,
    status: 500,
    reason: 'node password store failed',
    node: 'pi1',
  });
  passwords.failing = false;
  t.same(await authorize({ token: joinToken, node: 'pi1', password: PW }), { accept: true, node: 'pi1' });
});
