// Seed data shared by the demo monolith and the demo orders service.
// Every server instance takes its own deep copy, so instances never share state.

export interface User {
  id: number;
  name: string;
  email: string;
  role: 'customer' | 'admin';
  createdAt: string;
}

export interface Product {
  sku: string;
  name: string;
  priceCents: number;
  currency: 'EUR';
  stock: number;
}

export interface OrderItem {
  sku: string;
  name: string;
  quantity: number;
  unitPriceCents: number;
}

export interface Order {
  id: number;
  userId: number;
  items: OrderItem[];
  totalCents: number;
  currency: 'EUR';
  status: 'pending' | 'processing' | 'shipped' | 'delivered';
  createdAt: string;
}

const USERS: readonly User[] = [
  { id: 1, name: 'Ada Lovelace', email: 'ada@example.com', role: 'admin', createdAt: '2024-01-15T09:30:00.000Z' },
  { id: 2, name: 'Grace Hopper', email: 'grace@example.com', role: 'customer', createdAt: '2024-02-03T14:05:00.000Z' },
  { id: 3, name: 'Alan Turing', email: 'alan@example.com', role: 'customer', createdAt: '2024-03-21T08:00:00.000Z' },
];

const CATALOG: readonly Product[] = [
  { sku: 'KB-101', name: 'Mechanical keyboard', priceCents: 8900, currency: 'EUR', stock: 42 },
  { sku: 'MS-202', name: 'Wireless mouse', priceCents: 3900, currency: 'EUR', stock: 120 },
  { sku: 'MN-303', name: '27-inch monitor', priceCents: 27900, currency: 'EUR', stock: 7 },
  { sku: 'CB-404', name: 'USB-C cable (2 m)', priceCents: 1200, currency: 'EUR', stock: 500 },
];

const ORDERS: readonly Order[] = [
  {
    id: 1001,
    userId: 1,
    items: [
      { sku: 'KB-101', name: 'Mechanical keyboard', quantity: 1, unitPriceCents: 8900 },
      { sku: 'CB-404', name: 'USB-C cable (2 m)', quantity: 2, unitPriceCents: 1200 },
    ],
    totalCents: 11300,
    currency: 'EUR',
    status: 'delivered',
    createdAt: '2024-04-02T10:12:00.000Z',
  },
  {
    id: 1002,
    userId: 2,
    items: [{ sku: 'MN-303', name: '27-inch monitor', quantity: 1, unitPriceCents: 27900 }],
    totalCents: 27900,
    currency: 'EUR',
    status: 'shipped',
    createdAt: '2024-05-11T16:40:00.000Z',
  },
  {
    id: 1003,
    userId: 1,
    items: [{ sku: 'MS-202', name: 'Wireless mouse', quantity: 1, unitPriceCents: 3900 }],
    totalCents: 3900,
    currency: 'EUR',
    status: 'processing',
    createdAt: '2024-06-20T07:55:00.000Z',
  },
];

export function seedUsers(): User[] {
  return structuredClone(USERS) as User[];
}

export function seedCatalog(): Product[] {
  return structuredClone(CATALOG) as Product[];
}

export function seedOrders(): Order[] {
  return structuredClone(ORDERS) as Order[];
}
