// Notifications that go up the import graph. Modules import each other in one direction only
// (app.js at the top, dom.js at the bottom), so a module that must tell a module above it that
// something happened emits an event here instead of importing it, and the module that owns the
// reaction subscribes in its bind function. The events:
//   'session-lost'  a user-only call answered 401 (auth.js logs out the page)
//   'open-image'    a card was clicked; detail: the image id (viewer.js opens it)

const handlers = new Map(); // event name → [function]

/** From now on, every emit(name, detail) calls fn(detail). */
export function on(name, fn) {
  if (!handlers.has(name)) handlers.set(name, []);
  handlers.get(name).push(fn);
}

/** Calls the functions subscribed to name, in order, before returning. */
export function emit(name, detail) {
  for (const fn of handlers.get(name) || []) fn(detail);
}
