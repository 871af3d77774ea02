package recsys.flink;

import java.io.IOException;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/** A valid clickstream event, as the user aggregate gets it (keyed by user). */
final class Event {
    static final TypeInformation<Event> TYPE = new RecordTypeInfo<>(Event.class, new Serializer());

    /** The event id's 64-bit hash (de-duplication key). */
    long idHash;
    String userId;
    String itemId;
    /** Index of the event type (the contract's count columns order). */
    int type;
    long ts;
    /** Kafka produce time of the record, ms. */
    long produced;
    /** The item's category: the catalogue's, else the event's context.category; or null. */
    String category;

    /** Serializer of {@link Event}. */
    public static final class Serializer extends RecordSerializer<Event> {
        private static final long serialVersionUID = 1L;

        @Override
        public Event createInstance() {
            return new Event();
        }

        @Override
        public Event copy(Event from) {
            Event e = new Event();
            e.idHash = from.idHash;
            e.userId = from.userId;
            e.itemId = from.itemId;
            e.type = from.type;
            e.ts = from.ts;
            e.produced = from.produced;
            e.category = from.category;
            return e;
        }

        @Override
        public void serialize(Event e, DataOutputView out) throws IOException {
            out.writeLong(e.idHash);
            writeString(e.userId, out);
            writeString(e.itemId, out);
            out.writeByte(e.type);
            out.writeLong(e.ts);
            out.writeLong(e.produced);
            writeString(e.category, out);
        }

        @Override
        public Event deserialize(DataInputView in) throws IOException {
            Event e = new Event();
            e.idHash = in.readLong();
            e.userId = readString(in);
            e.itemId = readString(in);
            e.type = in.readByte();
            e.ts = in.readLong();
            e.produced = in.readLong();
            e.category = readString(in);
            return e;
        }

        @Override
        public TypeSerializerSnapshot<Event> snapshotConfiguration() {
            return new Snapshot();
        }
    }

    /** Snapshot of {@link Serializer} (no configuration). */
    public static final class Snapshot extends SimpleTypeSerializerSnapshot<Event> {
        public Snapshot() {
            super(Serializer::new);
        }
    }
}
