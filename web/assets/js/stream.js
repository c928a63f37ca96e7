// Reading a chat answer as it streams (server-sent events over a POST, so fetch + a
// reader rather than EventSource). Events: start {conversation_id}, token {text},
// tool_call {id, function: {name, arguments}} and tool_result {id, name, result, ok,
// elapsed_ms} (a bot's tools at work), done {answer, citations, usage, timings,
// tool_steps, trace?}, error {code, message, answer}.
// Aborting the signal closes the connection, which makes the server stop generating.

import { errorFrom } from './api.js';

/**
 * POST `body` to `url` and call the handlers as events arrive. Resolves with the done
 * event's data (or null if the stream was stopped); rejects with an ApiError when the
 * request is refused (401, 404, 429 …) or the answer fails midway.
 */
export async function streamChat(url, token, body, { onStart, onToken, onToolCall, onToolResult, signal } = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + token, 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(body),
    signal,
  }).catch((e) => {
    if (e.name === 'AbortError') throw e;
    const err = new Error(e.message);
    err.code = 'network';
    throw err;
  });
  if (!response.ok) throw await errorFrom(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let done = null;
  try {
    for (;;) {
      const { value, done: finished } = await reader.read();
      if (finished) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = parseEvent(block);
        if (!event) continue;
        if (event.name === 'start') onStart?.(event.data);
        else if (event.name === 'token') onToken?.(event.data.text);
        else if (event.name === 'tool_call') onToolCall?.(event.data);
        else if (event.name === 'tool_result') onToolResult?.(event.data);
        else if (event.name === 'done') done = event.data;
        else if (event.name === 'error') {
          const err = new Error(event.data.message);
          err.code = event.data.code || 'llm_failed';
          err.partial = event.data.answer;
          throw err;
        }
      }
    }
  } catch (e) {
    if (e.name === 'AbortError') return null;
    throw e;
  }
  return done;
}

function parseEvent(block) {
  let name = 'message';
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) name = line.slice(6).trim();
    else if (line.startsWith('data:')) data += line.slice(5).replace(/^ /, '');
  }
  if (!data) return null;
  try {
    return { name, data: JSON.parse(data) };
  } catch (_) {
    return { name, data };
  }
}
