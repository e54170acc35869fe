/* cold_start.c — a first libsako program.
 *
 * A small grocery shop opens with 200 products that nobody has seen yet. Every
 * round, 40 simulated shoppers each ask for 8 recommendations. A shopper clicks a
 * product with that product's hidden click rate (the program knows it, libsako
 * never does) and buys a third of what they click. The feedback goes back to
 * libsako with sako_update(), and every few rounds we print what libsako would
 * recommend now, next to the hidden click rates, and the share of shown products
 * that were clicked.
 *
 * Build and run:  make example        (or: build/cold_start [seed])
 * Same seed, same output.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "sako.h"

#define N_AISLES 8
#define PER_AISLE 25                 /* products per aisle: 200 in all */
#define N_PRODUCTS (N_AISLES * PER_AISLE)
#define ROUNDS 60
#define SHOPPERS 40                  /* recommendation requests per round */
#define SHOWN 8                      /* products shown per request */
#define START_MS 1767225600000LL     /* 2026-01-01, the time of the first event */

/* ------------------------------------------------------------ the shop */

typedef struct aisle {
    int64_t id, department_id;
    const char *name;
    const char *noun;          /* what its products are called */
    const char *variety[5];
    double click_rate;         /* typical click rate of its products (hidden) */
} aisle;

static const sako_category departments[] = {
    {1, 0, "dairy eggs"},
    {2, 0, "produce"},
    {3, 0, "snacks"},
};

static const aisle aisles[N_AISLES] = {
    {11, 1, "yogurt", "Yogurt", {"Strawberry", "Vanilla", "Plain", "Blueberry", "Honey"}, 0.07},
    {12, 1, "milk", "Milk", {"Whole", "2% Reduced Fat", "Oat", "Almond", "Lactose Free"}, 0.06},
    {13, 1, "packaged cheese", "Cheese", {"Cheddar", "Mozzarella", "Swiss", "Gouda", "Feta"}, 0.05},
    {21, 2, "fresh fruits", "", {"Bananas", "Strawberries", "Blueberries", "Avocados", "Lemons"}, 0.10},
    {22, 2, "fresh vegetables", "", {"Spinach", "Carrots", "Broccoli", "Cucumbers", "Onions"}, 0.08},
    {23, 2, "packaged herbs", "", {"Basil", "Cilantro", "Parsley", "Mint", "Dill"}, 0.02},
    {31, 3, "chips pretzels", "Chips", {"Sea Salt", "Barbecue", "Sour Cream", "Jalapeno", "Pretzel"}, 0.06},
    {32, 3, "cookies cakes", "Cookies", {"Chocolate Chip", "Oatmeal", "Shortbread", "Ginger", "Double Fudge"}, 0.05},
};

static const char *brands[5] = {"Organic", "Classic", "Farmhouse", "Value", "Family Size"};

typedef struct product {
    int64_t id;
    int aisle;                 /* index into aisles[] */
    char name[64];
    double click_rate;         /* hidden: what shoppers actually do */
} product;

static product products[N_PRODUCTS];

/* A small deterministic random number generator (splitmix64). */
static uint64_t rng_state;

static double uniform(void) /* in [0, 1) */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

/* Stop with libsako's message if a call failed. Every call below goes through it. */
static void check(int status, const char *what)
{
    if (status != SAKO_OK) {
        fprintf(stderr, "cold_start: %s failed: %s: %s\n", what, sako_errstr(status),
                sako_errmsg());
        exit(1);
    }
}

static const product *find_product(int64_t id)
{
    return id >= 1 && id <= N_PRODUCTS ? &products[id - 1] : NULL;
}

/* Name the products and give each a hidden click rate around its aisle's. */
static void make_products(void)
{
    for (int a = 0; a < N_AISLES; a++) {
        for (int j = 0; j < PER_AISLE; j++) {
            product *p = &products[a * PER_AISLE + j];
            p->id = a * PER_AISLE + j + 1;
            p->aisle = a;
            snprintf(p->name, sizeof p->name, "%s %s%s%s", brands[j % 5],
                     aisles[a].variety[j / 5], aisles[a].noun[0] ? " " : "", aisles[a].noun);
            /* A spread of about x0.3 .. x3 around the aisle's rate; a few hits. */
            double factor = 0.3 + 1.4 * uniform() + (uniform() < 0.05 ? 2.0 : 0.0);
            p->click_rate = aisles[a].click_rate * factor;
        }
    }
}

/* Register the departments, aisles and products with the engine. */
static void load_catalog(sako_engine *engine)
{
    sako_category cats[3 + N_AISLES];
    for (int d = 0; d < 3; d++)
        cats[d] = departments[d];
    for (int a = 0; a < N_AISLES; a++)
        cats[3 + a] = (sako_category){aisles[a].id, aisles[a].department_id, aisles[a].name};
    check(sako_categories_upsert(engine, cats, 3 + N_AISLES), "sako_categories_upsert");

    sako_item items[N_PRODUCTS];
    for (int i = 0; i < N_PRODUCTS; i++)
        items[i] = (sako_item){products[i].id, aisles[products[i].aisle].id, 1, START_MS};
    check(sako_items_upsert(engine, items, N_PRODUCTS), "sako_items_upsert");
}

/* ---------------------------------------------------------- reporting */

/* Mean hidden click rate of what a random shelf and the best possible shelf show. */
static void reference_rates(double *random_shelf, double *best_shelf)
{
    double rates[N_PRODUCTS], sum = 0;
    for (int i = 0; i < N_PRODUCTS; i++)
        sum += rates[i] = products[i].click_rate;
    /* The SHOWN highest rates, by selection (200 products: simple is fine). */
    double best = 0;
    for (int s = 0; s < SHOWN; s++) {
        int top = 0;
        for (int i = 1; i < N_PRODUCTS; i++)
            if (rates[i] > rates[top])
                top = i;
        best += rates[top];
        rates[top] = -1;
    }
    *random_shelf = sum / N_PRODUCTS;
    *best_shelf = best / SHOWN;
}

/* One anonymous request for the top 5, printed with what libsako knows about each
 * product (its posterior mean and impressions) and what it does not (the hidden
 * click rate). */
static void show_top5(sako_engine *engine, int64_t category_id)
{
    sako_query q = SAKO_QUERY_INIT;
    q.k = 5;
    q.category_id = category_id;
    sako_rec recs[5];
    size_t n;
    check(sako_recommend(engine, &q, recs, 5, &n), "sako_recommend");

    printf("    %-34s %-18s %6s %6s %6s %7s\n", "product", "aisle", "score", "mean",
           "shown", "hidden");
    for (size_t i = 0; i < n; i++) {
        sako_item_info info;
        check(sako_item_get(engine, recs[i].item_id, &info), "sako_item_get");
        const product *p = find_product(recs[i].item_id);
        printf("  %zu %-34s %-18s %6.3f %6.3f %6.0f %7.3f\n", i + 1, p ? p->name : "?",
               p ? aisles[p->aisle].name : "?", recs[i].score,
               info.alpha / (info.alpha + info.beta), info.impressions,
               p ? p->click_rate : 0.0);
    }
}

static int is_report_round(int round)
{
    return round == 1 || round == 2 || round == 5 || round == 10 || round == 20 ||
           round == 40 || round == ROUNDS;
}

/* ------------------------------------------------------------- the day */

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 42;
    rng_state = seed;
    make_products();

    /* An engine on a private in-memory database: nothing is kept after the program.
     * Give a file path instead of NULL to keep the model between runs. */
    sako_options opts = SAKO_OPTIONS_INIT;
    opts.seed = seed;                   /* reproducible Thompson draws */
    opts.durability = SAKO_DURABLE_OFF; /* nothing to protect in memory */
    opts.prior_refresh_events = 1000;   /* a small shop: re-pool the aisles' rates every
                                           1,000 events (the default is 10,000) */
    sako_engine *engine = NULL;
    check(sako_init(&engine, NULL, &opts), "sako_init");
    load_catalog(engine);

    double random_shelf, best_shelf;
    reference_rates(&random_shelf, &best_shelf);
    printf("libsako %s: %d products in %d aisles, nothing seen yet.\n", sako_version_string(),
           N_PRODUCTS, N_AISLES);
    printf("Each round %d shoppers see %d products each. Clicks per product shown:\n"
           "a random shelf would get %.1f%%, the best possible shelf %.1f%%.\n\n",
           SHOPPERS, SHOWN, 100 * random_shelf, 100 * best_shelf);
    printf("Columns: score = this request's Thompson draw, mean = libsako's posterior mean\n"
           "reward rate, shown = impressions so far, hidden = the true click rate.\n\n");
    printf("Before any feedback nothing is known: every product starts from Beta(1, 1),\n"
           "so the first shelf is a random one:\n");
    show_top5(engine, 0);

    sako_event events[SHOPPERS * SHOWN * 3]; /* at most: impression, click, purchase */
    int64_t clock_ms = START_MS;
    double total_shown = 0, total_clicks = 0;
    for (int round = 1; round <= ROUNDS; round++) {
        size_t n_events = 0;
        int shown = 0, clicks = 0, purchases = 0;
        for (int s = 0; s < SHOPPERS; s++) {
            sako_query q = SAKO_QUERY_INIT;
            q.user_id = 1 + (int64_t)(uniform() * 500); /* 500 regular shoppers */
            q.k = SHOWN;
            sako_rec recs[SHOWN];
            size_t n;
            check(sako_recommend(engine, &q, recs, SHOWN, &n), "sako_recommend");

            /* The shopper looks at each product shown and may click and buy it. */
            for (size_t i = 0; i < n; i++) {
                const product *p = find_product(recs[i].item_id);
                sako_event e = {q.user_id, recs[i].item_id, SAKO_EVENT_IMPRESSION,
                                clock_ms += 100, 0};
                events[n_events++] = e;
                shown++;
                if (p && uniform() < p->click_rate) {
                    e.type = SAKO_EVENT_CLICK;
                    e.time = clock_ms += 100;
                    events[n_events++] = e;
                    clicks++;
                    if (uniform() < 1.0 / 3.0) {
                        e.type = SAKO_EVENT_PURCHASE;
                        e.time = clock_ms += 100;
                        events[n_events++] = e;
                        purchases++;
                    }
                }
            }
        }
        /* One batch per round: applied at once, all or nothing. */
        check(sako_update(engine, events, n_events), "sako_update");
        total_shown += shown;
        total_clicks += clicks;

        if (is_report_round(round)) {
            printf("\nAfter round %d: this round %d of %d products shown were clicked "
                   "(%.1f%%), %d bought; %.1f%% over all rounds so far.\n",
                   round, clicks, shown, 100.0 * clicks / shown, purchases,
                   100.0 * total_clicks / total_shown);
            show_top5(engine, 0);
        }
    }

    /* Recompute every category prior from the event log, then ask within one aisle. */
    check(sako_retrain(engine), "sako_retrain");
    printf("\nOnly fresh fruits (a query restricted to one aisle):\n");
    show_top5(engine, aisles[3].id);

    /* A new product is not a blank slate: it starts where its aisle is. */
    sako_item newcomers[2] = {
        {N_PRODUCTS + 1, aisles[3].id, 1, clock_ms}, /* a new fruit */
        {N_PRODUCTS + 2, aisles[5].id, 1, clock_ms}, /* a new herb */
    };
    check(sako_items_upsert(engine, newcomers, 2), "sako_items_upsert");
    printf("\nTwo new products arrive, with no feedback yet:\n");
    for (int i = 0; i < 2; i++) {
        sako_item_info info;
        check(sako_item_get(engine, newcomers[i].id, &info), "sako_item_get");
        printf("  a new product in %-16s starts from a prior mean of %.3f\n",
               i == 0 ? aisles[3].name : aisles[5].name, info.prior_mean);
    }
    sako_stats stats;
    check(sako_stats_get(engine, &stats), "sako_stats_get");
    printf("\n%" PRIu64 " events from %" PRIu64 " shoppers; the whole catalog's rate is %.3f.\n",
           stats.n_events, stats.n_users, stats.global_mean);

    sako_close(engine);
    return 0;
}
