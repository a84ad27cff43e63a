/** User destinations (`/user/…`), as Herald resolves them. */

/** `user('/queue/x')` is `/user/queue/x`: the subscribing session's own copy of `/queue/x`. */
export function user(destination: string): string {
  if (!destination.startsWith('/')) {
    throw new TypeError(`a user destination starts with '/': ${JSON.stringify(destination)}`);
  }
  return `/user${destination}`;
}

/**
 * Where a SEND reaches every session of user `name` subscribed to `user(destination)`:
 * `/user/<name>/queue/x`, with `/` in the name written `%2F`. A session id in place of the
 * name reaches that one session.
 */
export function userDestination(name: string, destination: string): string {
  if (name === '') {
    throw new TypeError('a user name is not empty');
  }
  return `/user/${name.replaceAll('/', '%2F')}${user(destination).slice('/user'.length)}`;
}
