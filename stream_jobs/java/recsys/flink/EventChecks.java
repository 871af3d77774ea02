package recsys.flink;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeFormatterBuilder;
import java.util.HashMap;
import java.util.regex.Pattern;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonGenerator;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Routes every record the job cannot use to the dead letters, with the first reason that
 * applies (the order and texts of the contract's checks, generated in
 * {@code stream_jobs/job_spec.py}); the rest leave as {@link Event}s with the item's
 * category (catalogue first, else the event's {@code context.category}).
 *
 * <p>Late means at or before the watermark this operator has seen (the source's, right
 * before it): such an event is dead-lettered, never silently dropped. A dead letter is the
 * JSON object {@code {payload, reason, produced_at, src_partition, src_offset}}, time in
 * ISO-8601 UTC as Flink's JSON format writes a TIMESTAMP_LTZ(3).
 */
final class EventChecks extends ProcessFunction<ClickRecord, Event> {
    private static final long serialVersionUID = 1L;
    static final OutputTag<byte[]> DEAD_LETTERS =
            new OutputTag<>("dead-letters", PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO);
    private static final DateTimeFormatter ISO_UTC = new DateTimeFormatterBuilder()
            .append(DateTimeFormatter.ISO_LOCAL_DATE).appendLiteral('T')
            .append(DateTimeFormatter.ISO_LOCAL_TIME).appendLiteral('Z').toFormatter();
    private static final JsonFactory JSON = new JsonFactory();
    private static final String[] ID_FIELDS = {"event_id", "user_id", "item_id"};

    private final JobSettings settings;
    private transient Pattern idPattern;
    private transient HashMap<String, Integer> typeIndex;
    private transient Catalogue catalogue;

    EventChecks(JobSettings settings) {
        this.settings = settings;
    }

    @Override
    public void open(OpenContext context) {
        idPattern = Pattern.compile(settings.idPattern);
        typeIndex = new HashMap<>();
        for (int t = 0; t < settings.eventTypes.length; t++) {
            typeIndex.put(settings.eventTypes[t], t);
        }
        catalogue = new Catalogue(settings.cataloguePath, settings.catalogueCheckMs);
    }

    @Override
    public void processElement(ClickRecord r, Context ctx, Collector<Event> out) throws IOException {
        String reason = reason(r.parsed, r.eventTimeMs, ctx.timerService().currentWatermark());
        if (reason != null) {
            ctx.output(DEAD_LETTERS, deadLetter(r, reason));
            return;
        }
        EventParser.Parsed p = r.parsed;
        Event e = new Event();
        e.idHash = JobSettings.idHash(p.eventId);
        e.userId = p.userId;
        e.itemId = p.itemId;
        e.type = typeIndex.get(p.eventType);
        e.ts = p.tsMs;
        e.produced = r.produced;
        String category = catalogue.categoryOf(p.itemId);
        e.category = category != null ? category
                : p.category == null ? null : p.category.replace(';', ',');
        out.collect(e);
    }

    /** The first check that fails, or null for a usable event. */
    String reason(EventParser.Parsed p, long eventTimeMs, long watermark) {
        if (!p.isObject) {
            return "$: invalid JSON";
        }
        String[] ids = {p.eventId, p.userId, p.itemId};
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] == null) {
                return ID_FIELDS[i] + ": missing";
            }
            if (!idPattern.matcher(ids[i]).find()) { // SQL REGEXP semantics
                return ID_FIELDS[i] + ": " + settings.idInvalid;
            }
        }
        if (p.eventType == null) {
            return "event_type: missing";
        }
        if (!typeIndex.containsKey(p.eventType)) {
            return "event_type: unknown " + p.eventType;
        }
        if (p.ts == null) {
            return "ts: missing";
        }
        if (p.tsMs == null) {
            return "ts: not ISO 8601 with a UTC offset";
        }
        if (p.tsMs < settings.earliestMs) {
            return settings.earliestReason;
        }
        if (p.tsMs > System.currentTimeMillis() + settings.futureSkewMs) {
            return "ts: in the future";
        }
        if (p.price != null && p.priceValue == null) {
            return "price: not a number";
        }
        if (p.priceValue != null && p.priceValue < 0) {
            return "price: negative";
        }
        if (watermark != Long.MIN_VALUE && eventTimeMs <= watermark) {
            return settings.lateReason;
        }
        return null;
    }

    private static byte[] deadLetter(ClickRecord r, String reason) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(128 + (r.payload == null ? 0
                : r.payload.length));
        try (JsonGenerator g = JSON.createGenerator(bytes)) {
            g.writeStartObject();
            g.writeStringField("payload", r.payloadText());
            g.writeStringField("reason", reason);
            g.writeStringField("produced_at", ISO_UTC.format(
                    LocalDateTime.ofInstant(Instant.ofEpochMilli(r.produced), ZoneOffset.UTC)));
            g.writeNumberField("src_partition", r.partition);
            g.writeNumberField("src_offset", r.offset);
            g.writeEndObject();
        }
        return bytes.toByteArray();
    }
}
