package recsys.flink;

import java.io.IOException;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/** An item's row as its category's aggregate gets it (keyed by category): after each of
 * the item's events, its whole decayed popularity as of its newest event. */
final class CategoryUpdate {
    static final TypeInformation<CategoryUpdate> TYPE =
            new RecordTypeInfo<>(CategoryUpdate.class, new Serializer());

    String category;
    String item;
    double popularity;
    long lastEventMs;
    long produced;
    /** The item's events so far. */
    long n;

    /** Serializer of {@link CategoryUpdate}. */
    public static final class Serializer extends RecordSerializer<CategoryUpdate> {
        private static final long serialVersionUID = 1L;

        @Override
        public CategoryUpdate createInstance() {
            return new CategoryUpdate();
        }

        @Override
        public CategoryUpdate copy(CategoryUpdate from) {
            CategoryUpdate u = new CategoryUpdate();
            u.category = from.category;
            u.item = from.item;
            u.popularity = from.popularity;
            u.lastEventMs = from.lastEventMs;
            u.produced = from.produced;
            u.n = from.n;
            return u;
        }

        @Override
        public void serialize(CategoryUpdate u, DataOutputView out) throws IOException {
            writeString(u.category, out);
            writeString(u.item, out);
            out.writeDouble(u.popularity);
            out.writeLong(u.lastEventMs);
            out.writeLong(u.produced);
            out.writeLong(u.n);
        }

        @Override
        public CategoryUpdate deserialize(DataInputView in) throws IOException {
            CategoryUpdate u = new CategoryUpdate();
            u.category = readString(in);
            u.item = readString(in);
            u.popularity = in.readDouble();
            u.lastEventMs = in.readLong();
            u.produced = in.readLong();
            u.n = in.readLong();
            return u;
        }

        @Override
        public TypeSerializerSnapshot<CategoryUpdate> snapshotConfiguration() {
            return new Snapshot();
        }
    }

    /** Snapshot of {@link Serializer} (no configuration). */
    public static final class Snapshot extends SimpleTypeSerializerSnapshot<CategoryUpdate> {
        public Snapshot() {
            super(Serializer::new);
        }
    }
}
