package recsys.flink;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * One raw clickstream record, parsed once in the source ({@link EventParser}): the payload
 * (kept for a dead letter), where it came from, and the fields the checks need. Its event
 * time ({@link #eventTimeMs}) is the parsed {@code ts} when that is in the contract's range,
 * else 0: a record that fails its time checks never moves the watermark.
 */
final class ClickRecord {
    static final TypeInformation<ClickRecord> TYPE =
            new RecordTypeInfo<>(ClickRecord.class, new Serializer());

    byte[] payload;
    long produced;
    int partition;
    long offset;
    EventParser.Parsed parsed;
    long eventTimeMs;

    String payloadText() {
        return payload == null ? null : new String(payload, StandardCharsets.UTF_8);
    }

    /** Kafka record -> parsed {@link ClickRecord}; never fails (bad records are data). */
    static final class Deserializer implements KafkaRecordDeserializationSchema<ClickRecord> {
        private static final long serialVersionUID = 1L;
        private final String tsPattern;
        private final long earliestMs;
        private final long futureSkewMs;
        private transient EventParser parser;

        Deserializer(JobSettings settings) {
            tsPattern = settings.tsPattern;
            earliestMs = settings.earliestMs;
            futureSkewMs = settings.futureSkewMs;
        }

        @Override
        public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<ClickRecord> out) {
            if (parser == null) {
                parser = new EventParser(Pattern.compile(tsPattern));
            }
            ClickRecord r = new ClickRecord();
            r.payload = record.value();
            r.produced = record.timestamp();
            r.partition = record.partition();
            r.offset = record.offset();
            r.parsed = parser.parse(r.payload);
            Long ts = r.parsed.tsMs;
            boolean inRange = ts != null && ts >= earliestMs
                    && ts <= System.currentTimeMillis() + futureSkewMs;
            r.eventTimeMs = inRange ? ts : 0L;
            out.collect(r);
        }

        @Override
        public TypeInformation<ClickRecord> getProducedType() {
            return TYPE;
        }
    }

    /** Serializer of {@link ClickRecord} (used only if the source is ever not chained with
     * the checks). */
    public static final class Serializer extends RecordSerializer<ClickRecord> {
        private static final long serialVersionUID = 1L;

        @Override
        public ClickRecord createInstance() {
            return new ClickRecord();
        }

        @Override
        public ClickRecord copy(ClickRecord from) {
            ClickRecord r = new ClickRecord();
            r.payload = from.payload;
            r.produced = from.produced;
            r.partition = from.partition;
            r.offset = from.offset;
            r.parsed = from.parsed; // immutable
            r.eventTimeMs = from.eventTimeMs;
            return r;
        }

        @Override
        public void serialize(ClickRecord r, DataOutputView out) throws IOException {
            out.writeInt(r.payload == null ? -1 : r.payload.length);
            if (r.payload != null) {
                out.write(r.payload);
            }
            out.writeLong(r.produced);
            out.writeInt(r.partition);
            out.writeLong(r.offset);
            out.writeLong(r.eventTimeMs);
            EventParser.Parsed p = r.parsed;
            out.writeBoolean(p.isObject);
            for (String s : new String[] {p.eventId, p.userId, p.itemId, p.eventType, p.ts,
                    p.price, p.category}) {
                writeString(s, out);
            }
            out.writeBoolean(p.tsMs != null);
            if (p.tsMs != null) {
                out.writeLong(p.tsMs);
            }
            out.writeBoolean(p.priceValue != null);
            if (p.priceValue != null) {
                out.writeDouble(p.priceValue);
            }
        }

        @Override
        public ClickRecord deserialize(DataInputView in) throws IOException {
            ClickRecord r = new ClickRecord();
            int length = in.readInt();
            if (length >= 0) {
                r.payload = new byte[length];
                in.readFully(r.payload);
            }
            r.produced = in.readLong();
            r.partition = in.readInt();
            r.offset = in.readLong();
            r.eventTimeMs = in.readLong();
            boolean isObject = in.readBoolean();
            String[] s = new String[7];
            for (int i = 0; i < s.length; i++) {
                s[i] = readString(in);
            }
            Long tsMs = in.readBoolean() ? in.readLong() : null;
            Double priceValue = in.readBoolean() ? in.readDouble() : null;
            r.parsed = new EventParser.Parsed(isObject, s[0], s[1], s[2], s[3], s[4], tsMs, s[5],
                    priceValue, s[6]);
            return r;
        }

        @Override
        public TypeSerializerSnapshot<ClickRecord> snapshotConfiguration() {
            return new Snapshot();
        }
    }

    /** Snapshot of {@link Serializer} (no configuration). */
    public static final class Snapshot extends SimpleTypeSerializerSnapshot<ClickRecord> {
        public Snapshot() {
            super(Serializer::new);
        }
    }
}
