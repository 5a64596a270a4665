import { once } from 'node:events'
import { connect as netConnect } from 'node:net'
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet'
import type { Service, Teardown } from './service.ts'

/** A bare MQTT 3.1.1 client (mqtt-packet over TCP): it sets DUP and message ids itself, as firmware after a lost PUBACK. */
export async function rawClient (t: Teardown, service: Service, device: { username: string, password: string }, clientId: string) {
  const socket = netConnect(service.mqttPort, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const waiting: Array<{ match: (p: Packet) => boolean, resolve: (p: Packet) => void }> = []
  const closed = new Promise<void>(resolve => socket.once('close', () => resolve()))
  parser.on('packet', (packet: Packet) => {
    const i = waiting.findIndex(w => w.match(packet))
    if (i >= 0) waiting.splice(i, 1)[0]!.resolve(packet)
  })
  socket.on('data', data => parser.parse(data))
  socket.on('error', () => {})
  await once(socket, 'connect')
  const expect = (match: (p: Packet) => boolean) => new Promise<Packet>((resolve, reject) => {
    waiting.push({ match, resolve })
    closed.then(() => reject(new Error('connection closed')), () => {})
  })
  const connack = expect(p => p.cmd === 'connack')
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId, keepalive: 0, username: device.username, password: Buffer.from(device.password) }))
  const ack = await connack
  if (ack.cmd !== 'connack' || ack.returnCode !== 0) throw new Error(`CONNACK ${JSON.stringify(ack)}`)
  type Publish = Omit<IPublishPacket, 'cmd' | 'qos' | 'retain'> & { messageId: number }
  const packet = (p: Publish): Buffer => mqttPacket.generate({ cmd: 'publish', qos: 1, retain: false, ...p })
  return {
    closed,
    /** QoS 1 PUBLISHes written at once (one TCP write), resolved with their PUBACKs. */
    publish: (...packets: Publish[]) => {
      const acks = packets.map(p => expect(a => a.cmd === 'puback' && a.messageId === p.messageId))
      socket.write(Buffer.concat(packets.map(packet)))
      return Promise.all(acks)
    },
    end () { socket.end() }
  }
}

