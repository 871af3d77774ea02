package recsys.flink;

import java.io.Serializable;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;

/**
 * Everything the job reads, from the string map the Python entry point builds
 * ({@code stream_jobs/job_spec.py}, {@code JobConfig.job_parameters}): topics, windows,
 * weights, the dead-letter checks derived from the event contract, and per stream the Feast
 * layout and the value of each column. Parsed once when the job is built; travels inside the
 * operators (serializable).
 */
public final class JobSettings implements Serializable {
    private static final long serialVersionUID = 1L;
    static final String[] STREAMS = {"user", "item", "item_category", "item_pairs"};

    final String bootstrapServers;
    final String clickstreamTopic;
    final String deadLetterTopic;
    final String featuresTopic;
    final String groupId;
    final int fetchMinBytes;
    final int fetchMaxWaitMs;
    final long watermarkDelayMs;
    final long idleTimeoutMs;
    /** Kafka client properties for every consumer and producer (security settings). */
    final HashMap<String, String> clientProperties;
    /** Extra producer properties of the feature sinks (batching). */
    final HashMap<String, String> sinkProperties;

    final long[] windowsMs;
    /** Event types in type-index order (the contract's count columns). */
    final String[] eventTypes;
    final double[] weights;
    final double halfLifeMs;
    final int recentItems;
    final int affinityTop;
    final ActivityAcc.Pairing pairing;
    final int pairCapacity;
    final int pairTop;
    final String cataloguePath;
    final long catalogueCheckMs;
    final long emitIntervalMs;
    /** An aggregate emits early once this many rows wait. */
    final int emitMaxRows;

    final String idPattern;
    final String idInvalid;
    final String tsPattern;
    final long earliestMs;
    final String earliestReason;
    final long futureSkewMs;
    final String lateReason;

    final HashMap<String, String> streamSpecs = new HashMap<>();
    final HashMap<String, String> streamValues = new HashMap<>();

    public JobSettings(Map<String, String> params, Map<String, String> clientProperties) {
        Map<String, String> p = new HashMap<>(params);
        bootstrapServers = required(p, "recsys.bootstrap-servers");
        clickstreamTopic = required(p, "recsys.clickstream-topic");
        deadLetterTopic = required(p, "recsys.dead-letter-topic");
        featuresTopic = required(p, "recsys.features-topic");
        groupId = required(p, "recsys.group-id");
        fetchMinBytes = (int) longValue(p, "recsys.fetch-min-bytes");
        fetchMaxWaitMs = (int) longValue(p, "recsys.fetch-max-wait-ms");
        watermarkDelayMs = longValue(p, "recsys.watermark-delay-ms");
        idleTimeoutMs = longValue(p, "recsys.source-idle-timeout-ms");
        this.clientProperties = new HashMap<>(clientProperties);
        sinkProperties = new HashMap<>();
        sinkProperties.put("linger.ms", required(p, "recsys.sink-linger-ms"));
        sinkProperties.put("batch.size", required(p, "recsys.sink-batch-bytes"));

        windowsMs = longs(p, "recsys.windows-ms");
        eventTypes = required(p, "recsys.event-types").split(";");
        weights = doubles(p, "recsys.event-weights");
        halfLifeMs = Double.parseDouble(required(p, "recsys.half-life-ms"));
        recentItems = (int) longValue(p, "recsys.recent-items");
        affinityTop = (int) longValue(p, "recsys.affinity-top");
        long[] kinds = longs(p, "recsys.pair-types");
        int[] kindOfType = new int[kinds.length];
        for (int t = 0; t < kinds.length; t++) {
            kindOfType[t] = (int) kinds[t];
        }
        pairing = new ActivityAcc.Pairing(kindOfType, longs(p, "recsys.pair-windows-ms"),
                (int) longValue(p, "recsys.pair-partners"));
        pairCapacity = (int) longValue(p, "recsys.pair-capacity");
        pairTop = (int) longValue(p, "recsys.pair-top");
        cataloguePath = p.getOrDefault("recsys.catalogue-path", "");
        catalogueCheckMs = Long.parseLong(p.getOrDefault("recsys.catalogue-check-ms", "10000"));
        emitIntervalMs = longValue(p, "recsys.emit-interval-ms");
        emitMaxRows = (int) longValue(p, "recsys.emit-max-rows");

        idPattern = required(p, "recsys.check.id-pattern");
        idInvalid = required(p, "recsys.check.id-invalid");
        tsPattern = required(p, "recsys.check.ts-pattern");
        earliestMs = longValue(p, "recsys.check.earliest-ms");
        earliestReason = required(p, "recsys.check.earliest-reason");
        futureSkewMs = longValue(p, "recsys.check.future-skew-ms");
        lateReason = required(p, "recsys.check.late-reason");

        if (weights.length != eventTypes.length || kindOfType.length != eventTypes.length) {
            throw new IllegalArgumentException("recsys: event weights and pair types need one "
                    + "value per event type " + Arrays.toString(eventTypes));
        }
        for (String stream : STREAMS) {
            streamSpecs.put(stream, required(p, "recsys.stream." + stream + ".spec"));
            streamValues.put(stream, required(p, "recsys.stream." + stream + ".values"));
        }
    }

    int types() {
        return eventTypes.length;
    }

    int pairKinds() {
        return pairing.windows.length;
    }

    ActivityAcc newActivity(boolean perUser) {
        return new ActivityAcc(windowsMs.length, types(), perUser ? recentItems : 0);
    }

    /** The properties every Kafka client of the job gets. */
    Properties kafkaProperties() {
        Properties props = new Properties();
        props.putAll(clientProperties);
        return props;
    }

    private static String required(Map<String, String> p, String key) {
        String value = p.get(key);
        if (value == null || value.isEmpty()) {
            throw new IllegalArgumentException("job parameter " + key + " is not set");
        }
        return value;
    }

    private static long longValue(Map<String, String> p, String key) {
        return Long.parseLong(required(p, key));
    }

    private static long[] longs(Map<String, String> p, String key) {
        return Arrays.stream(required(p, key).split(";")).mapToLong(Long::parseLong).toArray();
    }

    private static double[] doubles(Map<String, String> p, String key) {
        return Arrays.stream(required(p, key).split(";")).mapToDouble(Double::parseDouble)
                .toArray();
    }

    /** 64-bit FNV-1a of an event id, finished with splitmix64: the de-duplication key. */
    static long idHash(String id) {
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < id.length(); i++) {
            h ^= id.charAt(i);
            h *= 0x100000001b3L;
        }
        h ^= h >>> 30;
        h *= 0xbf58476d1ce4e5b9L;
        h ^= h >>> 27;
        h *= 0x94d049bb133111ebL;
        return h ^ (h >>> 31);
    }
}
