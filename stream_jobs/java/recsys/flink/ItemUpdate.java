package recsys.flink;

import java.io.IOException;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * What the user aggregate sends to the item aggregate (keyed by {@link #item}): either an
 * event of the item, with the partners the user aggregate found for it, or one pair found
 * for an event of another item (that item is the partner of this one).
 */
final class ItemUpdate {
    static final TypeInformation<ItemUpdate> TYPE =
            new RecordTypeInfo<>(ItemUpdate.class, new Serializer());

    String item;
    /** True: an event of the item; false: only a pair (partners holds the other item). */
    boolean isEvent;
    long idHash;
    int type;
    long ts;
    long produced;
    String category;
    /** Pair kind of the partners (-1: none). */
    int pairKind = -1;
    String[] partners = ActivityAcc.NONE;
    /** The user's newest event and produce time when the pairs were found. */
    long pairTs;
    long pairProduced;

    /** Serializer of {@link ItemUpdate}. */
    public static final class Serializer extends RecordSerializer<ItemUpdate> {
        private static final long serialVersionUID = 1L;

        @Override
        public ItemUpdate createInstance() {
            return new ItemUpdate();
        }

        @Override
        public ItemUpdate copy(ItemUpdate from) {
            ItemUpdate u = new ItemUpdate();
            u.item = from.item;
            u.isEvent = from.isEvent;
            u.idHash = from.idHash;
            u.type = from.type;
            u.ts = from.ts;
            u.produced = from.produced;
            u.category = from.category;
            u.pairKind = from.pairKind;
            u.partners = from.partners.clone();
            u.pairTs = from.pairTs;
            u.pairProduced = from.pairProduced;
            return u;
        }

        @Override
        public void serialize(ItemUpdate u, DataOutputView out) throws IOException {
            writeString(u.item, out);
            out.writeBoolean(u.isEvent);
            if (u.isEvent) {
                out.writeLong(u.idHash);
                out.writeByte(u.type);
                out.writeLong(u.ts);
                out.writeLong(u.produced);
                writeString(u.category, out);
            }
            out.writeByte(u.pairKind);
            if (u.pairKind >= 0) {
                writeStrings(u.partners, out);
                out.writeLong(u.pairTs);
                out.writeLong(u.pairProduced);
            }
        }

        @Override
        public ItemUpdate deserialize(DataInputView in) throws IOException {
            ItemUpdate u = new ItemUpdate();
            u.item = readString(in);
            u.isEvent = in.readBoolean();
            if (u.isEvent) {
                u.idHash = in.readLong();
                u.type = in.readByte();
                u.ts = in.readLong();
                u.produced = in.readLong();
                u.category = readString(in);
            }
            u.pairKind = in.readByte();
            if (u.pairKind >= 0) {
                u.partners = readStrings(in);
                u.pairTs = in.readLong();
                u.pairProduced = in.readLong();
            }
            return u;
        }

        @Override
        public TypeSerializerSnapshot<ItemUpdate> snapshotConfiguration() {
            return new Snapshot();
        }
    }

    /** Snapshot of {@link Serializer} (no configuration). */
    public static final class Snapshot extends SimpleTypeSerializerSnapshot<ItemUpdate> {
        public Snapshot() {
            super(Serializer::new);
        }
    }
}
