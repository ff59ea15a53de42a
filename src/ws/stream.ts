/**
 * A WebSocket as a byte stream, so the NATS and MQTT connections run over it unchanged: each
 * received message's bytes are pushed as one chunk (a protocol line or packet may span
 * messages, as nats.ws and mqtt.js send them), each write goes out as one binary message.
 *
 * Written instead of ws.createWebSocketStream because the connections need a 'close' event on
 * every way a WebSocket can end (peer close frame, socket reset, our own end or destroy); that
 * helper only emits it after a destroy.
 */
import { Duplex } from 'node:stream';
import WebSocket from 'ws';

export class WebSocketStream extends Duplex {
  constructor(private readonly ws: WebSocket) {
    // Half-open makes no sense for a WebSocket: a close frame ends both directions.
    super({ allowHalfOpen: false });
    ws.on('message', (data: WebSocket.RawData) => {
      // binaryType 'nodebuffer' (the default) always hands a Buffer; the rest keeps the types honest.
      const chunk = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (!this.push(chunk)) ws.pause();
    });
    ws.on('close', () => {
      this.push(null);
      this.destroy();
    });
    ws.on('error', (err: Error) => this.destroy(err));
  }

  override _read(): void {
    if (this.ws.isPaused) this.ws.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      // Closing: what is still queued cannot reach the peer; the 'close' event follows.
      callback();
      return;
    }
    this.ws.send(chunk, { binary: true }, callback);
  }

  /** end(): a normal close frame after everything written so far. */
  override _final(callback: (err?: Error | null) => void): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
    callback(err);
  }
}
